"""BM25 as sparse vectors, encoded by qdrant_edge's `Bm25`: the tokenizer and token hashing of a Qdrant server.

A document's value for a term is BM25's term-frequency part,
``tf * (k1 + 1) / (tf + k1 * (1 - b + b * doc_len / avg_len))``; a query gives each of its
distinct terms the value 1. The collection's sparse vector is configured with Qdrant's IDF
modifier, so the dot product the index computes is the BM25 score with IDF taken from the
collection's live statistics: ``sum over query terms of idf(t) * value(d, t)``. A fixed
``avg_len`` (as fastembed's ``Qdrant/bm25`` does) keeps document vectors independent of the
rest of the corpus, so adding documents never requires re-encoding old ones.

Vectors are computed in this process and sent to the store, so the embedded store and a Qdrant
server index the same ones. Qdrant's encoder replaced Tessera's own (CRC-32 ids over
``guardrails.normalize.content_terms``): on the demo QA set it found as much or more, BM25 recall@5
0.941 -> 0.955 and hybrid 0.964 -> 0.973 (benchmarks/retrieval_quality.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import qdrant_edge as qe


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


class Bm25Encoder:
    """Turns texts into BM25 sparse vectors for a collection whose sparse vector uses the IDF modifier.

    Tokenising is Qdrant's English default: lowercase, split into words, drop English stopwords,
    Snowball-stem. Token ids are hashes, so any process encodes the same text to the same vector
    without a stored vocabulary.
    """

    def __init__(self, *, k1: float = 1.2, b: float = 0.75, avg_len: float = 256.0) -> None:
        if k1 < 0:
            raise ValueError(f"BM25 k1 must be non-negative, got {k1}.")
        if not 0.0 <= b <= 1.0:
            raise ValueError(f"BM25 b must lie in [0, 1], got {b}.")
        if avg_len <= 0:
            raise ValueError(f"BM25 avg_len must be positive, got {avg_len}.")
        self.k1 = k1
        self.b = b
        self.avg_len = avg_len
        self._model = qe.Bm25(qe.Bm25Config(k=k1, b=b, avg_len=avg_len))

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        """One sparse vector per text, holding each term's saturated term frequency."""
        return [_sparse(self._model.embed_document(text)) for text in texts]

    def encode_query(self, text: str) -> SparseVector:
        """A sparse vector with value 1 for each distinct term of `text` (empty if it has none)."""
        return _sparse(self._model.embed_query(text))


def _sparse(vector: qe.SparseVector) -> SparseVector:
    return SparseVector(indices=list(vector.indices), values=list(vector.values))
