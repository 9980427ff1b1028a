"""Chunkers that cut a parsed Section into Chunks, each selectable by name through `make_chunker`.

Every chunker works on character spans of the section's text and stores exactly that slice (trimmed of
surrounding whitespace), so `full_text[chunk.start:chunk.end] == chunk.text` always holds.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from pipeline.documents import Chunk, Section
from pipeline.retrieval.embed import Embedder
from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

CHUNKING_STRATEGIES = ("tokens", "recursive", "structure", "semantic")
DEFAULT_SEPARATORS = ("\n\n", "\n", ". ", " ", "")

Span = tuple[int, int]
TokenSpans = Callable[[str], Sequence[Span]]
"""Maps a text to the (start, end) character spans of its tokens, in order."""

_WORD_TOKEN = re.compile(r"\w+|[^\w\s]")
_LEADING_SPACE = re.compile(r"\s*")
_WORD_START = re.compile(r"(?<=\s)\S")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n[ \t]*\n\s*")


class Chunker(Protocol):
    """Cuts one section of a document into chunks whose offsets point into the document's full parsed text."""

    def split(self, section: Section, source: str) -> list[Chunk]: ...


def word_token_spans(text: str) -> list[Span]:
    """The default tokenizer: words and single punctuation marks, which needs no model files."""
    return [match.span() for match in _WORD_TOKEN.finditer(text)]


def hf_token_spans(tokenizer: Any) -> TokenSpans:
    """Adapt a Hugging Face tokenizer so token windows match what the embedder actually sees."""
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            "The 'tokens' chunker needs a fast (Rust) Hugging Face tokenizer to map tokens back to characters; "
            "load it with AutoTokenizer.from_pretrained(..., use_fast=True)."
        )

    def spans(text: str) -> list[Span]:
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [(start, end) for start, end in encoding["offset_mapping"] if end > start]

    return spans


def _check_size(size: int, overlap: int) -> None:
    if size < 1:
        raise ConfigError(f"Chunk size must be at least 1, got {size}; set a positive chunking size.")
    if overlap < 0 or overlap >= size:
        raise ConfigError(
            f"Chunk overlap must be at least 0 and smaller than the chunk size ({size}), got {overlap}; "
            "lower the chunking overlap or raise the size."
        )


def _is_blank(text: str) -> bool:
    return not text or text.isspace()


def _trimmed(text: str, lo: int, hi: int) -> Span:
    lo = _LEADING_SPACE.match(text, lo, hi).end()
    while hi > lo and text[hi - 1].isspace():
        hi -= 1
    return lo, hi


def _to_chunks(section: Section, source: str, spans: Iterator[Span] | Sequence[Span]) -> list[Chunk]:
    """Build chunks from local spans, dropping empty ones and ones wholly inside the previous chunk."""
    text = section.text
    chunks: list[Chunk] = []
    previous: Span = (-1, -1)
    for span in spans:
        lo, hi = _trimmed(text, *span)
        if lo >= hi or (lo >= previous[0] and hi <= previous[1]):
            continue
        previous = (lo, hi)
        chunks.append(
            Chunk(
                text=text[lo:hi],
                source=source,
                heading=section.heading,
                start=section.start + lo,
                end=section.start + hi,
            )
        )
    return chunks


class TokenChunker:
    """Windows of `size` tokens, each starting `size - overlap` tokens after the previous one.

    Token spans come from `token_spans` (the embedder's tokenizer via `hf_token_spans`, or a word regex),
    so a window maps straight back to the characters from its first token's start to its last token's end.
    """

    def __init__(self, size: int, overlap: int = 0, token_spans: TokenSpans | None = None) -> None:
        _check_size(size, overlap)
        self.size = size
        self.overlap = overlap
        self.token_spans = token_spans or word_token_spans

    def split(self, section: Section, source: str) -> list[Chunk]:
        if _is_blank(section.text):
            return []
        tokens = self.token_spans(section.text)
        windows = []
        for first in range(0, len(tokens), self.size - self.overlap):
            last = min(first + self.size, len(tokens))
            windows.append((tokens[first][0], tokens[last - 1][1]))
            if last == len(tokens):
                break
        return _to_chunks(section, source, windows)


class RecursiveChunker:
    """Splits at the coarsest separator that occurs ("\\n\\n", then "\\n", ". ", " ", then anywhere) until each
    piece fits, then packs pieces into chunks of at most `size` characters.

    Each chunk after the first starts at the first word that begins within the last `overlap` characters
    of the previous chunk (mid-word only when those characters hold no word start), so the overlap is
    really there even when the pieces are longer than `overlap`.
    """

    def __init__(self, size: int, overlap: int = 0, separators: Sequence[str] = DEFAULT_SEPARATORS) -> None:
        _check_size(size, overlap)
        self.size = size
        self.overlap = overlap
        self.separators = tuple(separators)

    def split(self, section: Section, source: str) -> list[Chunk]:
        if _is_blank(section.text):
            return []
        return _to_chunks(section, source, self.spans(section.text, 0, len(section.text)))

    def spans(self, text: str, lo: int, hi: int) -> list[Span]:
        """Chunk spans covering text[lo:hi]; used directly by chunkers that fall back to this one."""
        return _pack(text, self._pieces(text, lo, hi, self.separators), self.size, self.overlap)

    def _pieces(self, text: str, lo: int, hi: int, separators: tuple[str, ...]) -> Iterator[Span]:
        if hi - lo <= self.size:
            yield lo, hi
            return
        for index, separator in enumerate(separators):
            if separator and text.find(separator, lo, hi) != -1:
                for start, end in _split_after(text, lo, hi, separator):
                    if end - start <= self.size:
                        yield start, end
                    else:
                        yield from self._pieces(text, start, end, separators[index + 1 :])
                return
        # No separator occurs (or "" was reached): cut at fixed character positions.
        for start in range(lo, hi, self.size):
            yield start, min(start + self.size, hi)


def _split_after(text: str, lo: int, hi: int, separator: str) -> Iterator[Span]:
    """Contiguous spans of text[lo:hi], each ending just after an occurrence of `separator`."""
    start = lo
    while (found := text.find(separator, start, hi)) != -1:
        yield start, found + len(separator)
        start = found + len(separator)
    if start < hi:
        yield start, hi


def _pack(text: str, pieces: Iterator[Span], size: int, overlap: int) -> list[Span]:
    """Merge contiguous pieces (each at most `size` long) into spans of at most `size` characters, each
    starting inside the previous span's last `overlap` characters."""
    spans: list[Span] = []
    start: int | None = None
    end = 0
    for lo, hi in pieces:
        if start is None:
            start = lo
        elif hi - start > size:
            spans.append((start, end))
            start = _overlap_start(text, max(end - overlap, hi - size, start + 1), end)
        end = hi
    if start is not None:
        spans.append((start, end))
    return spans


def _overlap_start(text: str, floor: int, end: int) -> int:
    """The first word start in text[floor:end], else `floor` itself; `end` (no overlap) when floor >= end."""
    if floor >= end:
        return end
    word = _WORD_START.search(text, floor, end)
    return word.start() if word else floor


def _paragraph_spans(text: str) -> Iterator[Span]:
    start = 0
    for match in _PARAGRAPH_BREAK.finditer(text):
        yield _trimmed(text, start, match.start())
        start = match.end()
    yield _trimmed(text, start, len(text))


class StructureChunker:
    """Packs whole paragraphs of one section into chunks of at most `size` characters.

    A chunk never spans two sections, so it never mixes two headings. Paragraphs longer than `size` fall back
    to recursive splitting; `overlap` applies only there, since whole paragraphs are natural boundaries.
    """

    def __init__(self, size: int, overlap: int = 0) -> None:
        _check_size(size, overlap)
        self.size = size
        self.fallback = RecursiveChunker(size, overlap)

    def split(self, section: Section, source: str) -> list[Chunk]:
        if _is_blank(section.text):
            return []
        text = section.text
        spans: list[Span] = []
        pack: Span | None = None
        for lo, hi in _paragraph_spans(text):
            if lo >= hi:
                continue
            if hi - lo > self.size:
                if pack:
                    spans.append(pack)
                    pack = None
                spans.extend(self.fallback.spans(text, lo, hi))
            elif pack and hi - pack[0] <= self.size:
                pack = (pack[0], hi)
            else:
                if pack:
                    spans.append(pack)
                pack = (lo, hi)
        if pack:
            spans.append(pack)
        return _to_chunks(section, source, spans)


def _sentence_spans(text: str) -> Iterator[Span]:
    start = 0
    for match in _SENTENCE_BREAK.finditer(text):
        yield _trimmed(text, start, match.start())
        start = match.end()
    yield _trimmed(text, start, len(text))


class SemanticChunker:
    """Breaks a section where the topic shifts, judged by embeddings of adjacent sentences.

    Steps: split into sentences (sentences longer than `size` are cut recursively); embed them; take the
    cosine distance between each pair of neighbours; break after every sentence whose distance to the next
    is at or above the `breakpoint_percentile`-th percentile of the section's distances (and above the
    smallest, so a section with uniform distances is not broken everywhere); finally cut any group longer
    than `size` characters at sentence boundaries. Chunks do not overlap.
    """

    def __init__(self, embedder: Embedder, size: int, breakpoint_percentile: float = 90.0) -> None:
        _check_size(size, 0)
        if not 0.0 <= breakpoint_percentile <= 100.0:
            raise ConfigError(
                f"breakpoint_percentile must be between 0 and 100, got {breakpoint_percentile}."
            )
        self.embedder = embedder
        self.size = size
        self.breakpoint_percentile = breakpoint_percentile
        self.fallback = RecursiveChunker(size, 0)

    def split(self, section: Section, source: str) -> list[Chunk]:
        if _is_blank(section.text):
            return []
        text = section.text
        sentences: list[Span] = []
        for lo, hi in _sentence_spans(text):
            if hi - lo > self.size:
                sentences.extend(_trimmed(text, *span) for span in self.fallback.spans(text, lo, hi))
            elif lo < hi:
                sentences.append((lo, hi))
        breaks = self._breakpoints(text, sentences)
        spans: list[Span] = []
        group_start: int | None = None
        group_end = 0
        for index, (lo, hi) in enumerate(sentences):
            if group_start is None:
                group_start = lo
            elif hi - group_start > self.size:
                spans.append((group_start, group_end))
                group_start = lo
            group_end = hi
            if index in breaks:
                spans.append((group_start, group_end))
                group_start = None
        if group_start is not None:
            spans.append((group_start, group_end))
        return _to_chunks(section, source, spans)

    def _breakpoints(self, text: str, sentences: list[Span]) -> set[int]:
        if len(sentences) < 3:
            return set()
        vectors = np.asarray(self.embedder.encode([text[lo:hi] for lo, hi in sentences]), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(sentences):
            raise ConfigError(
                f"The embedder returned an array of shape {vectors.shape} for {len(sentences)} sentences; "
                "the semantic chunker needs one row per text from encode()."
            )
        distances = 1.0 - np.einsum("ij,ij->i", vectors[:-1], vectors[1:])
        threshold = np.percentile(distances, self.breakpoint_percentile)
        chosen = (distances >= threshold) & (distances > distances.min())
        return {int(index) for index in np.flatnonzero(chosen)}


def make_chunker(
    strategy: str,
    *,
    size: int,
    overlap: int,
    tokenizer: Any = None,
    embedder: Embedder | None = None,
) -> Chunker:
    """Build the chunker named `strategy`.

    `size` counts tokens for "tokens" and characters otherwise. `tokenizer` (tokens only) is a fast Hugging
    Face tokenizer or a callable returning token spans; `embedder` is required by "semantic", which ignores
    `overlap`.
    """
    _check_size(size, overlap)
    if strategy == "tokens":
        if tokenizer is None:
            spans = None
        elif hasattr(tokenizer, "is_fast"):
            spans = hf_token_spans(tokenizer)
        else:
            spans = tokenizer
        return TokenChunker(size, overlap, token_spans=spans)
    if strategy == "recursive":
        return RecursiveChunker(size, overlap)
    if strategy == "structure":
        return StructureChunker(size, overlap)
    if strategy == "semantic":
        if embedder is None:
            raise ConfigError(
                "The 'semantic' chunking strategy needs an embedder to compare sentences; pass embedder=..., "
                f"or choose another strategy ({', '.join(CHUNKING_STRATEGIES)})."
            )
        if overlap:
            log.info("The semantic chunker makes no overlapping chunks; ignoring overlap=%d", overlap)
        return SemanticChunker(embedder, size)
    raise ConfigError(
        f"Unknown chunking strategy {strategy!r}; choose one of: {', '.join(CHUNKING_STRATEGIES)}."
    )
