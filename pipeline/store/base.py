"""The vector store interface, its factory, and the query semantics both backends share.

A collection holds one point per chunk: a dense vector named ``dense`` (cosine), a BM25 sparse
vector named ``bm25`` (IDF applied by the index), and the chunk's fields as payload. Ranking is
decided here, not inside the engines, so that the embedded store and a Qdrant server return the
same ids in the same order for the same data: each engine only scores candidates (one batched call
for both lists), ties are broken by point id, and hybrid results are fused with Reciprocal Rank
Fusion in :func:`fuse_rankings`. Qdrant's own prefetch + RRF leaves the order of tied BM25 scores,
which are common, to each engine, and Edge and qdrant-client then disagree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import numpy as np

from pipeline.store.bm25 import SparseVector
from pipeline.documents import Chunk, Hit
from pipeline.errors import CollectionNotFoundError, StoreError

DENSE_VECTOR = "dense"
SPARSE_VECTOR = "bm25"

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

_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

QueryVector = np.ndarray | SparseVector
Leg = tuple[str, QueryVector]
"""One ranked candidate list to compute: the vector name and the query vector."""


@dataclass(frozen=True)
class SearchFilter:
    """Restricts a search to chunks from some sources and/or carrying any of some tags.

    ``None`` places no restriction; an empty list matches nothing.
    """

    sources: list[str] | None = None
    tags: list[str] | None = None

    def matches_nothing(self) -> bool:
        return self.sources == [] or self.tags == []


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

    def set_payload(self, name: str, ids: Sequence[str], payload: Mapping[str, Any]) -> None:
        """Set the given payload fields on existing points, keeping their other fields (e.g. ``{"staged": False}``)."""
        ...

    def scan(self, name: str, fields: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every point's id with the requested payload fields, read page by page."""
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


def open_store(
    *,
    path: str | Path | None = None,
    url: str | None = None,
    api_key: str | None = None,
) -> VectorStore:
    """The embedded store in the folder `path`, or the Qdrant server or cluster at `url`."""
    if (path is None) == (url is None):
        raise StoreError(
            f"Only one of (path, url) can be set, and one must be. path is {path!r}, url is {url!r}. "
            "Pass --store PATH for the embedded store or --qdrant-url URL for a Qdrant server."
        )
    if path is not None:
        if api_key is not None:
            raise StoreError("api_key applies to a Qdrant server (url=...), not to an embedded store (path=...).")
        from pipeline.store.edge import EdgeStore

        return EdgeStore(path)
    from pipeline.store.qdrant import QdrantStore

    return QdrantStore(url, api_key=api_key)


def require_collection(store: VectorStore, name: str) -> None:
    """Fail fast, before any model loads, when a collection has not been ingested."""
    if not store.has_collection(name):
        raise collection_not_found(name, store.list_collections(), "the store")


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


def chunk_payload(chunk: Chunk, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "text": chunk.text,
        "source": chunk.source,
        "heading": list(chunk.heading),
        "start": chunk.start,
        "end": chunk.end,
        "tags": list(chunk.tags),
    }
    if extra:
        check_extra_fields(extra)
        payload.update(extra)
    return payload


def check_extra_fields(extra: Mapping[str, Any]) -> None:
    clash = sorted(set(extra) & set(CHUNK_FIELDS))
    if clash:
        raise StoreError(f"Extra payload fields {clash} would overwrite the chunk's own fields; rename them.")


def chunk_from_payload(point_id: str, payload: Mapping[str, Any], collection: str) -> Chunk:
    missing = [name for name in CHUNK_FIELDS if name not in payload]
    if missing:
        raise StoreError(
            f"Point {point_id} in collection {collection!r} lacks the payload fields {missing}: "
            "the collection was not written by Tessera. Ingest into another collection."
        )
    return Chunk(
        text=payload["text"],
        source=payload["source"],
        heading=tuple(payload["heading"]),
        start=int(payload["start"]),
        end=int(payload["end"]),
        tags=tuple(payload["tags"]),
        id=point_id,
    )


def check_upsert(
    chunks: Sequence[Chunk],
    dense: np.ndarray,
    sparse: Sequence[SparseVector],
    extra: Sequence[Mapping[str, Any]] | None,
) -> np.ndarray:
    """The dense matrix as float32, after checking that every argument has one entry per chunk."""
    matrix = np.asarray(dense, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != len(chunks):
        raise ValueError(f"dense must have shape ({len(chunks)}, dim), one row per chunk; got {matrix.shape}.")
    if len(sparse) != len(chunks):
        raise ValueError(f"sparse must hold one vector per chunk: {len(sparse)} for {len(chunks)} chunks.")
    if extra is not None and len(extra) != len(chunks):
        raise ValueError(f"extra must hold one dict per chunk: {len(extra)} for {len(chunks)} chunks.")
    if not np.isfinite(matrix).all():
        raise ValueError("dense holds NaN or infinite values; check the embedder's output.")
    return matrix


def query_vector(dense: np.ndarray, collection: str, dim: int) -> np.ndarray:
    vector = np.asarray(dense, dtype=np.float32)
    if vector.ndim != 1:
        raise ValueError(f"A dense query is one vector; got an array of shape {vector.shape}.")
    if vector.shape[0] != dim:
        raise dimension_mismatch(collection, dim, vector.shape[0])
    return vector


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


def ranked_search(
    *,
    collection: str,
    legs: Sequence[Leg],
    hybrid: bool,
    limit: int,
    prefetch_limit: int,
    score_legs: Callable[[Sequence[Leg], int], list[list[tuple[str, float]]]],
    fetch_payloads: Callable[[Sequence[str]], dict[str, dict[str, Any]]],
) -> list[Hit]:
    """The search every backend runs; the backend supplies candidate scoring and payload lookup.

    `score_legs(legs, depth)` returns, per leg, up to `depth` (id, score) pairs from the engine.
    An empty sparse query is a leg with no candidates rather than an error.
    """
    if limit < 1 or prefetch_limit < 1:
        raise ValueError(f"limit and prefetch_limit must be positive; got {limit} and {prefetch_limit}.")
    depth = max(prefetch_limit, limit) if hybrid else limit
    runnable = [leg for leg in legs if not (isinstance(leg[1], SparseVector) and not leg[1].indices)]
    candidates = score_legs(runnable, depth + TIE_SLACK) if runnable else []
    rankings = [rank_by_score(scored, depth) for scored in candidates]
    if hybrid:
        top = fuse_rankings(rankings, limit)
    else:
        top = rankings[0][:limit] if rankings else []
    payloads = fetch_payloads([point_id for point_id, _ in top])
    return [
        Hit(chunk=chunk_from_payload(point_id, payloads[point_id], collection), score=float(score))
        for point_id, score in top
        if point_id in payloads
    ]


def search_legs(dense: np.ndarray | None, sparse: SparseVector | None, collection: str, dim: int) -> list[Leg]:
    if dense is None and sparse is None:
        raise ValueError("search needs a dense query vector, a sparse one, or both.")
    legs: list[Leg] = []
    if dense is not None:
        legs.append((DENSE_VECTOR, query_vector(dense, collection, dim)))
    if sparse is not None:
        legs.append((SPARSE_VECTOR, sparse))
    return legs
