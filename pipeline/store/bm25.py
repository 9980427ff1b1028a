"""BM25 as sparse vectors: documents carry saturated term frequencies, the index applies IDF at query time.

A document's value for a term is BM25's term-frequency part,
``tf * (k1 + 1) / (tf + k1 * (1 - b + b * doc_len / avg_len))``; a query gives each of its
distinct terms the value 1. The collection's sparse vector is configured with Qdrant's IDF
modifier, so the dot product the index computes is the BM25 score with IDF taken from the
collection's live statistics: ``sum over query terms of idf(t) * value(d, t)``. A fixed
``avg_len`` (as fastembed's ``Qdrant/bm25`` does) keeps document vectors independent of the
rest of the corpus, so adding documents never requires re-encoding old ones.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from guardrails.normalize import ENGLISH_STOPWORDS, content_terms

@dataclass(frozen=True)
class SparseVector:
    """A sparse vector: parallel lists of dimension ids (unsigned 32-bit) and their values."""

    indices: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.indices) != len(self.values):
            raise ValueError(
                f"A sparse vector needs one value per index; got {len(self.indices)} indices "
                f"and {len(self.values)} values."
            )


def token_id(token: str) -> int:
    """A stable unsigned 32-bit id for a token (CRC-32 of its UTF-8 bytes), the same in every process."""
    return zlib.crc32(token.encode("utf-8"))


class Bm25Encoder:
    """Turns texts into BM25 sparse vectors for a collection whose sparse vector uses the IDF modifier.

    Tokenising: lowercase, split into unicode word characters, drop English stopwords and tokens
    longer than ``MAX_TOKEN_LENGTH``, fold plurals (``stem=True``). Token ids are CRC-32 hashes, so
    any process encodes the same text to the same vector without a stored vocabulary.
    """

    def __init__(
        self,
        *,
        k1: float = 1.2,
        b: float = 0.75,
        avg_len: float = 256.0,
        stopwords: Iterable[str] = ENGLISH_STOPWORDS,
        stem: bool = True,
    ) -> None:
        if k1 < 0:
            raise ValueError(f"BM25 k1 must be non-negative, got {k1}.")
        if not 0.0 <= b <= 1.0:
            raise ValueError(f"BM25 b must lie in [0, 1], got {b}.")
        if avg_len <= 0:
            raise ValueError(f"BM25 avg_len must be positive, got {avg_len}.")
        self.k1 = k1
        self.b = b
        self.avg_len = avg_len
        self.stopwords = frozenset(stopwords)
        self.stem = stem

    def tokenize(self, text: str) -> list[str]:
        """The terms of `text`, in order, as they are indexed."""
        return content_terms(text, stopwords=self.stopwords, stem=self.stem)

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        """One sparse vector per text, holding each term's saturated term frequency."""
        return [self._encode_document(text) for text in texts]

    def encode_query(self, text: str) -> SparseVector:
        """A sparse vector with value 1 for each distinct term of `text` (empty if it has none)."""
        ids = sorted({token_id(term) for term in self.tokenize(text)})
        return SparseVector(indices=ids, values=[1.0] * len(ids))

    def _encode_document(self, text: str) -> SparseVector:
        terms = self.tokenize(text)
        if not terms:
            return SparseVector()
        # Term frequencies are counted per id, so the rare CRC-32 collision behaves like one term.
        frequencies = Counter(token_id(term) for term in terms)
        length_norm = self.k1 * (1.0 - self.b + self.b * len(terms) / self.avg_len)
        ids = sorted(frequencies)
        values = [
            frequencies[i] * (self.k1 + 1.0) / (frequencies[i] + length_norm) for i in ids
        ]
        return SparseVector(indices=ids, values=values)
