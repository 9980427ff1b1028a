"""The vector store interface and the query semantics every backend shares.

A collection holds one point per chunk: a dense vector named ``dense`` (cosine), a BM25 sparse
vector named ``bm25_qdrant`` (IDF applied by the index), and the chunk's fields as payload. Ranking is
decided here, not inside the engines, so that the embedded store and a Qdrant server return the
same ids in the same order for the same data: each engine only scores candidates (one batched call
for both lists), ties are broken by point id, and hybrid results are fused with Reciprocal Rank
Fusion in :func:`fuse_rankings`. Qdrant's own prefetch + RRF leaves the order of tied BM25 scores,
which are common, to each engine, and Edge and qdrant-client then disagree.

Filters are expressed as engine-neutral :class:`FieldMatch` and :class:`FieldRange` conditions;
:mod:`pipeline.store.engine` implements the interface once over the calls each engine supplies.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import numpy as np

from pipeline.documents import Chunk, Hit
from pipeline.errors import CollectionNotFoundError, StoreError
from pipeline.store.bm25 import SparseVector

DENSE_VECTOR = "dense"
SPARSE_VECTOR = "bm25_qdrant"
RETIRED_SPARSE_VECTOR = "bm25"
"""The sparse vector of collections built by Tessera's own BM25 encoder, whose token ids today's queries lack."""

RRF_K = 10
"""A candidate at rank r (from 1) in a list adds 1 / (RRF_K + r). Cormack et al. use 60; 10 lets a chunk that
one signal ranks first (BM25 on an exact error code) survive a poor rank in the other: recall@5 0.933 -> 0.953
for hybrid on the demo QA set (benchmarks/retrieval_quality.py)."""

TIE_SLACK = 16
"""Extra candidates fetched past a cut-off, so that ties straddling it are settled by id, not by engine order."""

SCORE_ATOL = 1e-6
SCORE_RTOL = 1e-5
"""Engine scores closer than max(SCORE_ATOL, SCORE_RTOL * score) are ranked as ties (see rank_by_score)."""

CHUNK_FIELDS = ("text", "source", "heading", "start", "end", "tags")

STAGED_FIELD = "staged"
"""Points whose payload has ``staged: true`` are stored but never searched: ingest writes a file's new chunks
staged, then unstages them and deletes the old ones, so a search never sees half of a file's update."""

RECORD_ID = "7e55e4a0-0000-4000-8000-00000000c011"
"""The id of the point that holds a collection's record (its embedder and its ingest manifests, see
:mod:`pipeline.store.record`): kept in the collection so it travels with it (a server, a model's snapshot), staged so
no search returns it, and left out of `scan`, `count` and `retrieve`."""

_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

QueryVector = np.ndarray | SparseVector
Leg = tuple[str, QueryVector]
"""One ranked candidate list to compute: the vector name and the query vector."""


@dataclass(frozen=True)
class FieldMatch:
    """One payload condition in engine-neutral form: the field holds one of `values` (a list field: any item).

    With ``negate`` the condition excludes the points it matches instead.
    """

    field: str
    values: tuple[str | int | bool, ...]
    negate: bool = False


@dataclass(frozen=True)
class FieldRange:
    """One payload condition on a number: the field lies within the given bounds (``None``: unbounded).

    With ``negate`` the condition excludes the points it matches instead.
    """

    field: str
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    negate: bool = False


Condition = FieldMatch | FieldRange

HIDE_STAGED = FieldMatch(STAGED_FIELD, (True,), negate=True)

METADATA_FIELD = "metadata"
"""The payload object that holds a point's metadata columns; `where` conditions name its keys."""


@dataclass(frozen=True)
class SearchFilter:
    """Restricts a search to chunks from some sources, carrying any of some tags, and meeting `where` conditions.

    ``None`` places no restriction; an empty list matches nothing. `where` holds conditions on payload fields
    (metadata keys as ``metadata.<column>``), as :func:`pipeline.store.where.parse_where` makes them.
    """

    sources: list[str] | None = None
    tags: list[str] | None = None
    where: tuple[Condition, ...] = ()

    def matches_nothing(self) -> bool:
        return self.sources == [] or self.tags == []

    def conditions(self) -> list[Condition]:
        """The filter as conditions that must all hold."""
        fields = (("source", self.sources), ("tags", self.tags))
        matches: list[Condition] = [FieldMatch(field, tuple(values)) for field, values in fields if values is not None]
        return [*matches, *self.where]

    def narrowed(self, other: SearchFilter | None) -> SearchFilter:
        """Both filters at once: sources and tags from `other` where it sets them, `where` conditions of both."""
        if other is None:
            return self
        return SearchFilter(
            sources=other.sources if other.sources is not None else self.sources,
            tags=other.tags if other.tags is not None else self.tags,
            where=(*self.where, *other.where),
        )


class VectorStore(Protocol):
    """Named collections of chunks with a dense and a BM25 vector each, searchable by either or both."""

    def ensure_collection(self, name: str, dense_dim: int) -> None:
        """Create the collection if it is missing; fail if it exists with another dense dimension."""
        ...

    def has_collection(self, name: str) -> bool: ...

    def list_collections(self) -> list[str]: ...

    def drop_collection(self, name: str) -> None:
        """Delete the collection and its points; nothing happens if it does not exist."""
        ...

    def upsert(
        self,
        name: str,
        chunks: Sequence[Chunk],
        dense: np.ndarray,
        sparse: Sequence[SparseVector],
        extra: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Insert or replace one point per chunk (id = ``chunk.id``); `extra` adds payload fields per chunk."""
        ...

    def delete(self, name: str, ids: Sequence[str]) -> None: ...

    def retrieve(self, name: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The payload of each of `ids` that the collection holds, by id (ids it lacks are left out)."""
        ...

    def record_payload(self, name: str) -> dict[str, Any] | None:
        """The payload of the collection's record point (see :mod:`pipeline.store.record`); None if it has none."""
        ...

    def set_payload(self, name: str, ids: Sequence[str], payload: Mapping[str, Any]) -> None:
        """Set the given payload fields on existing points, keeping their other fields (e.g. ``{"staged": False}``)."""
        ...

    def scan(
        self, name: str, fields: Sequence[str], where: Sequence[Condition] = ()
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every point's id (of those meeting every `where` condition) with the requested payload fields, read page
        by page."""
        ...

    def count(self, name: str) -> int: ...

    def search(
        self,
        name: str,
        *,
        dense: np.ndarray | None = None,
        sparse: SparseVector | None = None,
        limit: int = 10,
        prefetch_limit: int = 50,
        filter: SearchFilter | None = None,
        exact: bool = False,
    ) -> list[Hit]:
        """Dense, BM25, or (both given) hybrid search: the top `prefetch_limit` of each, fused by RRF.

        Staged points (payload ``staged: true``) are never returned.
        """
        ...

    def close(self) -> None: ...

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def check_collection_name(name: str) -> None:
    """Collection names double as folder names in the embedded store, so both backends accept the same set."""
    if not _COLLECTION_NAME.match(name):
        raise StoreError(
            f"Invalid collection name {name!r}: use up to 128 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit."
        )


def collection_not_found(name: str, existing: Sequence[str], where: str) -> CollectionNotFoundError:
    listed = ", ".join(sorted(existing)) if existing else "none"
    return CollectionNotFoundError(
        f"Collection {name!r} does not exist in {where} (existing collections: {listed}). "
        f"Index documents into it with: python scripts/ingest.py DOCS --collection {name}"
    )


def dimension_mismatch(name: str, stored: int, given: int) -> StoreError:
    return StoreError(
        f"Collection {name!r} holds {stored}-dimensional dense vectors, but {given}-dimensional ones "
        "were given (was it built with another embedder?). Use another collection "
        "(--collection NAME), or drop this one and ingest again."
    )


def rank_by_score(scored: Sequence[tuple[str, float]], limit: int) -> list[tuple[str, float]]:
    """The best `limit` of an engine's (id, score) pairs, higher first and ties in id order.

    Scores within float noise of each other count as tied: Edge's float32 sums differ by an ulp from
    one build of a shard to the next, and from qdrant-client's, so exact comparison would let that
    noise decide the order.
    """
    ordered = sorted(scored, key=lambda item: -item[1])
    ranked: list[tuple[str, float]] = []
    start = 0
    while start < len(ordered) and len(ranked) < limit:
        top = ordered[start][1]
        tolerance = max(SCORE_ATOL, SCORE_RTOL * abs(top))
        end = start + 1
        while end < len(ordered) and top - ordered[end][1] <= tolerance:
            end += 1
        ranked.extend(sorted(ordered[start:end], key=lambda item: item[0]))
        start = end
    return ranked[:limit]


def fuse_rankings(rankings: Sequence[Sequence[tuple[str, float]]], limit: int) -> list[tuple[str, float]]:
    """Reciprocal Rank Fusion: each id scores the sum of 1 / (RRF_K + rank) over the lists it appears in.

    Fused scores are computed from ranks alone, so they tie exactly or not at all; ties go in id order.
    """
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, (point_id, _) in enumerate(ranking, start=1):
            fused[point_id] = fused.get(point_id, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:limit]
