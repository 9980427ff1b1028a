"""The units that flow from parsing to the index: parsed sections of a file and the chunks cut from them."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Section:
    """A run of a parsed document's text under one heading path.

    `start` is the character offset of `text` in the document's full parsed text, so chunk offsets
    stay absolute even when a large file is read in bounded pieces.
    """

    text: str
    heading: tuple[str, ...] = ()
    start: int = 0


@dataclass(frozen=True)
class Chunk:
    """A piece of a document as it is indexed and cited."""

    text: str
    source: str
    heading: tuple[str, ...]
    start: int
    end: int
    tags: tuple[str, ...] = ()
    id: str = field(default="")

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", chunk_id(self.source, self.start, self.text))

    @property
    def heading_path(self) -> str:
        return " > ".join(self.heading)

    @property
    def index_text(self) -> str:
        """What is embedded and BM25-indexed: the heading path, then the text. A paragraph cut away from its
        heading still matches the heading's words (nDCG@5 +0.028 on the demo QA set, benchmarks/retrieval_quality.py)."""
        return f"{self.heading_path}\n\n{self.text}" if self.heading else self.text


def chunk_id(source: str, start: int, text: str) -> str:
    """A UUID derived from the chunk's content and place, so re-ingesting the same file gives the same ids."""
    digest = hashlib.sha256(f"{source}\x00{start}\x00{text}".encode("utf-8")).digest()
    return str(uuid.UUID(bytes=digest[:16]))


@dataclass(frozen=True)
class Hit:
    """A chunk returned by a search or a rerank, with the score that ranked it (higher is better)."""

    chunk: Chunk
    score: float
