"""The VectorStore logic both backends share, written once over the few engine calls each backend supplies.

:class:`EngineStore` checks arguments, batches upserts, pages scans, and runs every search (legs, ranking with
ties in id order, RRF fusion, payload fetch, hiding staged points); a backend (``edge``, ``qdrant``) subclasses
it with the engine calls and maps :class:`~pipeline.store.base.FieldMatch` and ``FieldRange`` conditions and query
vectors to its engine's types with one small function each, so a new filter field or payload rule is written here only.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pipeline.documents import Chunk, Hit
from pipeline.errors import StoreError
from pipeline.store.base import (
    CHUNK_FIELDS,
    DENSE_VECTOR,
    HIDE_STAGED,
    RECORD_ID,
    RETIRED_SPARSE_VECTOR,
    SPARSE_VECTOR,
    STAGED_FIELD,
    TIE_SLACK,
    Condition,
    Leg,
    QueryVector,
    SearchFilter,
    VectorStore,
    check_collection_name,
    collection_not_found,
    dimension_mismatch,
    fuse_rankings,
    rank_by_score,
)
from pipeline.store.bm25 import SparseVector

log = logging.getLogger(__name__)

PAYLOAD_INDEXES: dict[str, Literal["keyword", "bool"]] = {"source": "keyword", "tags": "keyword", STAGED_FIELD: "bool"}
"""The payload fields every new collection indexes, for the filters searches apply."""

UPSERT_BATCH = 256
SCAN_PAGE = 256


@dataclass(frozen=True)
class StoredPoint:
    """A point as the shared logic hands it to an engine: id, named vectors and payload."""

    id: str
    vectors: dict[str, QueryVector]
    payload: dict[str, Any]


class EngineStore(VectorStore):
    """VectorStore over one Qdrant engine: checks, batching, paging and ranking here; engine calls in subclasses.

    The engine methods (``_create_collection`` ... ``_release``) are called only on an open store, and the
    point-level ones only for a collection known to exist.
    """

    def __init__(self, where: str) -> None:
        self._where = where
        self._dims: dict[str, int] = {}
        self._closed = False

    # -- collections -------------------------------------------------------------------------

    def ensure_collection(self, name: str, dense_dim: int) -> None:
        self._check_open()
        check_collection_name(name)
        if self._collection_exists(name):
            stored = self._dim(name)
            if stored != dense_dim:
                raise dimension_mismatch(name, stored, dense_dim)
            return
        self._create_collection(name, dense_dim)
        self._dims[name] = dense_dim
        log.info("Created collection %r (%d dims) in %s", name, dense_dim, self._where)

    def has_collection(self, name: str) -> bool:
        self._check_open()
        return self._collection_exists(name)

    def list_collections(self) -> list[str]:
        self._check_open()
        return sorted(self._collection_names())

    def drop_collection(self, name: str) -> None:
        self._check_open()
        check_collection_name(name)
        self._dims.pop(name, None)
        if self._collection_exists(name):
            self._drop_collection(name)
            log.info("Dropped collection %r from %s", name, self._where)

    # -- points --------------------------------------------------------------------------------

    def upsert(
        self,
        name: str,
        chunks: Sequence[Chunk],
        dense: np.ndarray,
        sparse: Sequence[SparseVector],
        extra: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        matrix = check_upsert(chunks, dense, sparse, extra)
        dim = self._dim(name)
        if matrix.shape[0] and matrix.shape[1] != dim:
            raise dimension_mismatch(name, dim, matrix.shape[1])
        points = [
            StoredPoint(
                chunk.id,
                {DENSE_VECTOR: matrix[row], SPARSE_VECTOR: sparse[row]},
                chunk_payload(chunk, extra[row] if extra is not None else None),
            )
            for row, chunk in enumerate(chunks)
        ]
        for start in range(0, len(points), UPSERT_BATCH):
            self._upsert_points(name, points[start : start + UPSERT_BATCH])

    def delete(self, name: str, ids: Sequence[str]) -> None:
        self._dim(name)
        if ids:
            self._delete_points(name, list(ids))

    def retrieve(self, name: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        self._dim(name)
        wanted = [point_id for point_id in dict.fromkeys(ids) if point_id != RECORD_ID]
        return self._retrieve_payloads(name, wanted) if wanted else {}

    def record_payload(self, name: str) -> dict[str, Any] | None:
        self._dim(name)
        return self._retrieve_payloads(name, [RECORD_ID]).get(RECORD_ID)

    def set_payload(self, name: str, ids: Sequence[str], payload: Mapping[str, Any]) -> None:
        check_extra_fields(payload)
        self._dim(name)
        if ids and payload:
            self._set_payload(name, list(ids), dict(payload))

    def scan(
        self, name: str, fields: Sequence[str], where: Sequence[Condition] = ()
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        self._dim(name)
        with_payload: bool | list[str] = list(fields) if fields else False
        offset: Any = None
        while True:
            records, offset = self._scroll(name, offset, SCAN_PAGE, with_payload, where)
            yield from (record for record in records if record[0] != RECORD_ID)
            if offset is None:
                return

    def count(self, name: str) -> int:
        """Points in the collection, not counting its record."""
        self._dim(name)
        return self._count(name) - (self.record_payload(name) is not None)

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
        """Each leg scored by the engine, ranked here with ties in id order, fused by RRF if hybrid.

        An empty sparse query is a leg with no candidates rather than an error.
        """
        legs = self._legs(name, dense, sparse)
        if limit < 1 or prefetch_limit < 1:
            raise ValueError(f"limit and prefetch_limit must be positive; got {limit} and {prefetch_limit}.")
        if filter is not None and filter.matches_nothing():
            return []
        conditions = [*(filter.conditions() if filter is not None else []), HIDE_STAGED]
        hybrid = len(legs) == 2
        depth = max(prefetch_limit, limit) if hybrid else limit
        runnable = [leg for leg in legs if not (isinstance(leg[1], SparseVector) and not leg[1].indices)]
        candidates = self._score_legs(name, runnable, depth + TIE_SLACK, conditions, exact) if runnable else []
        rankings = [rank_by_score(scored, depth) for scored in candidates]
        if hybrid:
            top = fuse_rankings(rankings, limit)
        else:
            top = rankings[0][:limit] if rankings else []
        payloads = self._retrieve_payloads(name, [point_id for point_id, _ in top]) if top else {}
        return [
            Hit(chunk=chunk_from_payload(point_id, payloads[point_id], name), score=float(score))
            for point_id, score in top
            if point_id in payloads
        ]

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._release()

    # -- shared internals ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"Cannot use {self._where}: the store is closed. Open it again with open_store().")

    def _dim(self, name: str) -> int:
        """The collection's dense dimension, raising CollectionNotFoundError if it does not exist."""
        self._check_open()
        if name not in self._dims:
            check_collection_name(name)
            if not self._collection_exists(name):
                raise collection_not_found(name, self._collection_names(), self._where)
            self._dims[name] = self._stored_dim(name)
        return self._dims[name]

    def _stored_dim(self, name: str) -> int:
        dim, sparse_names = self._read_vectors(name)
        if dim is not None and SPARSE_VECTOR not in sparse_names and RETIRED_SPARSE_VECTOR in sparse_names:
            raise StoreError(
                f"Collection {name!r} in {self._where} was indexed by an earlier Tessera, whose BM25 vectors "
                "do not match today's queries. Index into a new collection "
                "(python scripts/ingest.py DOCS --collection NEW), or delete this one and ingest again."
            )
        if dim is None or SPARSE_VECTOR not in sparse_names:
            raise StoreError(
                f"Collection {name!r} in {self._where} lacks the {DENSE_VECTOR!r} or {SPARSE_VECTOR!r} vector: "
                "it was not written by Tessera. Use another collection."
            )
        return dim

    def _legs(self, name: str, dense: np.ndarray | None, sparse: SparseVector | None) -> list[Leg]:
        dim = self._dim(name)
        if dense is None and sparse is None:
            raise ValueError("search needs a dense query vector, a sparse one, or both.")
        legs: list[Leg] = []
        if dense is not None:
            legs.append((DENSE_VECTOR, query_vector(dense, name, dim)))
        if sparse is not None:
            legs.append((SPARSE_VECTOR, sparse))
        return legs

    # -- what each engine supplies -------------------------------------------------------------

    @abstractmethod
    def _collection_names(self) -> list[str]: ...

    @abstractmethod
    def _collection_exists(self, name: str) -> bool: ...

    @abstractmethod
    def _create_collection(self, name: str, dense_dim: int) -> None:
        """Create the dense and sparse vectors and the PAYLOAD_INDEXES."""

    @abstractmethod
    def _drop_collection(self, name: str) -> None: ...

    @abstractmethod
    def _read_vectors(self, name: str) -> tuple[int | None, list[str]]:
        """The size of the stored DENSE_VECTOR (``None`` if there is none) and the names of the sparse vectors."""

    @abstractmethod
    def _upsert_points(self, name: str, points: list[StoredPoint]) -> None: ...

    @abstractmethod
    def _delete_points(self, name: str, ids: list[str]) -> None: ...

    @abstractmethod
    def _set_payload(self, name: str, ids: list[str], payload: dict[str, Any]) -> None: ...

    @abstractmethod
    def _scroll(
        self, name: str, offset: Any, limit: int, with_payload: bool | list[str], where: Sequence[Condition]
    ) -> tuple[list[tuple[str, dict[str, Any]]], Any]:
        """One page of (id, payload) of the points meeting every condition, and the offset of the next page (``None``
        after the last)."""

    @abstractmethod
    def _count(self, name: str) -> int: ...

    @abstractmethod
    def _score_legs(
        self, name: str, legs: Sequence[Leg], depth: int, conditions: Sequence[Condition], exact: bool
    ) -> list[list[tuple[str, float]]]:
        """Per leg, up to `depth` (id, score) pairs among the points meeting every condition, in one engine call."""

    @abstractmethod
    def _retrieve_payloads(self, name: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    @abstractmethod
    def _release(self) -> None:
        """Flush and let go of the engine (called once, by close)."""


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
