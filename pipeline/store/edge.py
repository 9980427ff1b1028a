"""The embedded vector store: one Qdrant Edge shard per collection, in subfolders of one store folder.

Edge runs no background optimizer: new points are searched by brute force until `optimize()`
builds HNSW for segments past the indexing threshold. This store optimizes every collection it
wrote to when it closes, so an ingest run leaves an indexed store behind. Like a Qdrant server,
Edge keeps counting deleted points in its BM25 IDF statistics for a while (here: until the shard
is next opened), so scores can shift slightly after deletes and a reopen.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe
from filelock import FileLock, Timeout

from pipeline.store.bm25 import SparseVector
from pipeline.documents import Chunk, Hit
from pipeline.errors import StoreError, StoreLockedError
from pipeline.store.base import (
    DENSE_VECTOR,
    SPARSE_VECTOR,
    STAGED_FIELD,
    Leg,
    SearchFilter,
    VectorStore,
    check_collection_name,
    check_extra_fields,
    check_upsert,
    chunk_payload,
    collection_not_found,
    dimension_mismatch,
    ranked_search,
    search_legs,
)

log = logging.getLogger(__name__)

LOCK_FILE = ".tessera.lock"
CONFIG_FILE = "edge_config.json"  # written by Qdrant Edge into every shard folder
UPSERT_BATCH = 256
SCAN_PAGE = 256
KEYWORD_FIELDS = ("source", "tags")
# The engine's default search width (ef=100) gave recall@10 0.889 against exact search at 100k points;
# 256 gave 0.963 for about 0.5 ms more per query (benchmarks/query_latency.py).
DEFAULT_HNSW_EF = 256


class EdgeStore(VectorStore):
    """Collections as Qdrant Edge shards under `path`, locked against other processes while open.

    `indexing_threshold_kb` and `full_scan_threshold_kb` are Qdrant's thresholds, applied to
    collections this store creates: a segment bigger than the first gets an HNSW index when
    optimized, and a search over fewer vectors (in KB) than the second scans them exactly instead.
    ``None`` keeps Qdrant's defaults, under which small collections are always searched exactly.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        indexing_threshold_kb: int | None = None,
        full_scan_threshold_kb: int | None = None,
        hnsw_ef: int = DEFAULT_HNSW_EF,
    ) -> None:
        self.path = Path(path).expanduser()
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"Store path {self.path} is a file, not a folder; pass another --store path.")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"Cannot create the store folder {self.path}: {error}") from error
        self._lock = FileLock(self.path / LOCK_FILE, blocking=False, thread_local=False)
        try:
            self._lock.acquire()
        except Timeout as error:
            raise StoreLockedError(
                f"The store {self.path} is in use by another process; stop it or pass another --store path."
            ) from error
        self.hnsw_ef = hnsw_ef
        self._indexing_threshold_kb = indexing_threshold_kb
        self._full_scan_threshold_kb = full_scan_threshold_kb
        self._shards: dict[str, qe.EdgeShard] = {}
        self._dims: dict[str, int] = {}
        self._written: set[str] = set()
        self._closed = False

    # -- collections -------------------------------------------------------------------------

    def ensure_collection(self, name: str, dense_dim: int) -> None:
        self._check_open()
        check_collection_name(name)
        if self.has_collection(name):
            stored = self._dim(name)
            if stored != dense_dim:
                raise dimension_mismatch(name, stored, dense_dim)
            return
        config = qe.EdgeConfig(
            vectors={DENSE_VECTOR: qe.EdgeVectorParams(size=dense_dim, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            hnsw_config=self._hnsw_config(),
            optimizers=self._optimizers_config(),
        )
        try:
            shard = qe.EdgeShard.create(str(self.path / name), config)
            for field in KEYWORD_FIELDS:
                shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
            shard.update(qe.UpdateOperation.create_field_index(STAGED_FIELD, qe.PayloadSchemaType.Bool))
        except Exception as error:  # Edge raises bare Exception for every engine failure
            raise StoreError(f"Cannot create collection {name!r} in {self.path}: {error}") from error
        self._shards[name] = shard
        self._dims[name] = dense_dim
        log.info("Created collection %r (%d dims) in %s", name, dense_dim, self.path)

    def has_collection(self, name: str) -> bool:
        self._check_open()
        return name in self.list_collections()

    def list_collections(self) -> list[str]:
        self._check_open()
        return sorted(
            entry.name
            for entry in self.path.iterdir()
            if entry.is_dir() and (entry / CONFIG_FILE).is_file()
        )

    def drop_collection(self, name: str) -> None:
        self._check_open()
        check_collection_name(name)
        shard = self._shards.pop(name, None)
        if shard is not None:
            shard.close()
        self._dims.pop(name, None)
        self._written.discard(name)
        if (self.path / name / CONFIG_FILE).is_file():
            shutil.rmtree(self.path / name)
            log.info("Dropped collection %r from %s", name, self.path)

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
        shard = self._shard(name)
        if matrix.shape[0] and matrix.shape[1] != self._dim(name):
            raise dimension_mismatch(name, self._dim(name), matrix.shape[1])
        points = [
            qe.Point(
                chunk.id,
                {
                    DENSE_VECTOR: matrix[row].tolist(),
                    SPARSE_VECTOR: qe.SparseVector(list(sparse[row].indices), list(sparse[row].values)),
                },
                chunk_payload(chunk, extra[row] if extra is not None else None),
            )
            for row, chunk in enumerate(chunks)
        ]
        for start in range(0, len(points), UPSERT_BATCH):
            shard.update(qe.UpdateOperation.upsert_points(points[start : start + UPSERT_BATCH]))
        if points:
            self._written.add(name)

    def delete(self, name: str, ids: Sequence[str]) -> None:
        shard = self._shard(name)
        if ids:
            shard.update(qe.UpdateOperation.delete_points(list(ids)))
            self._written.add(name)

    def set_payload(self, name: str, ids: Sequence[str], payload: Mapping[str, Any]) -> None:
        check_extra_fields(payload)
        shard = self._shard(name)
        if ids and payload:
            shard.update(qe.UpdateOperation.set_payload(list(ids), dict(payload)))
            self._written.add(name)

    def scan(self, name: str, fields: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        shard = self._shard(name)
        with_payload: bool | list[str] = list(fields) if fields else False
        offset = None
        while True:
            records, offset = shard.scroll(
                qe.ScrollRequest(offset=offset, limit=SCAN_PAGE, with_payload=with_payload, with_vector=False)
            )
            for record in records:
                yield str(record.id), dict(record.payload or {})
            if offset is None:
                return

    def count(self, name: str) -> int:
        return self._shard(name).count(qe.CountRequest(exact=True))

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
        shard = self._shard(name)
        legs = search_legs(dense, sparse, name, self._dim(name))
        if filter is not None and filter.matches_nothing():
            return []
        edge_filter = _edge_filter(filter)
        params = qe.SearchParams(exact=exact) if exact else qe.SearchParams(hnsw_ef=self.hnsw_ef)

        def score_legs(runnable: Sequence[Leg], depth: int) -> list[list[tuple[str, float]]]:
            requests = [
                qe.QueryRequest(
                    limit=depth,
                    query=qe.Query.Nearest(_edge_vector(vector), using=using),
                    filter=edge_filter,
                    params=params,
                    with_payload=False,
                    with_vector=False,
                )
                for using, vector in runnable
            ]
            results = shard.query_batch(qe.QueryBatchRequest(requests))
            return [[(str(point.id), point.score) for point in points] for points in results]

        def fetch_payloads(ids: Sequence[str]) -> dict[str, dict[str, Any]]:
            records = shard.retrieve(list(ids), True, False) if ids else []
            return {str(record.id): dict(record.payload or {}) for record in records}

        return ranked_search(
            collection=name,
            legs=legs,
            hybrid=dense is not None and sparse is not None,
            limit=limit,
            prefetch_limit=prefetch_limit,
            score_legs=score_legs,
            fetch_payloads=fetch_payloads,
        )

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Index what this store wrote, flush every open shard to disk and release the folder."""
        if self._closed:
            return
        self._closed = True
        try:
            for name, shard in self._shards.items():
                try:
                    if name in self._written:
                        log.info("Indexing collection %r in %s", name, self.path)
                        shard.optimize()
                    shard.flush()
                finally:
                    shard.close()
        finally:
            self._shards.clear()
            self._lock.release()

    # -- internals -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"The store {self.path} is closed; open it again with open_store(path=...).")

    def _shard(self, name: str) -> qe.EdgeShard:
        self._check_open()
        shard = self._shards.get(name)
        if shard is not None:
            return shard
        check_collection_name(name)
        if not (self.path / name / CONFIG_FILE).is_file():
            raise collection_not_found(name, self.list_collections(), f"the store {self.path}")
        try:
            shard = qe.EdgeShard.load(str(self.path / name))
        except Exception as error:  # Edge raises bare Exception for every engine failure
            raise StoreError(f"Cannot open collection {name!r} in {self.path}: {error}") from error
        self._shards[name] = shard
        return shard

    def _dim(self, name: str) -> int:
        if name not in self._dims:
            # EdgeShard has no config getter; the shard persists its EdgeConfig as JSON.
            config = json.loads((self.path / name / CONFIG_FILE).read_text(encoding="utf-8"))
            params = config.get("vectors", {}).get(DENSE_VECTOR)
            if params is None or SPARSE_VECTOR not in config.get("sparse_vectors", {}):
                raise StoreError(
                    f"Collection {name!r} in {self.path} lacks the {DENSE_VECTOR!r} or {SPARSE_VECTOR!r} "
                    "vector: it was not written by Tessera. Use another collection."
                )
            self._dims[name] = int(params["size"])
        return self._dims[name]

    def _hnsw_config(self) -> qe.HnswIndexConfig | None:
        if self._full_scan_threshold_kb is None:
            return None
        return qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=self._full_scan_threshold_kb)

    def _optimizers_config(self) -> qe.EdgeOptimizersConfig | None:
        if self._indexing_threshold_kb is None:
            return None
        return qe.EdgeOptimizersConfig(indexing_threshold=self._indexing_threshold_kb)


def _edge_vector(vector: np.ndarray | SparseVector) -> list[float] | qe.SparseVector:
    if isinstance(vector, SparseVector):
        return qe.SparseVector(list(vector.indices), list(vector.values))
    return vector.tolist()


def _edge_filter(filter: SearchFilter | None) -> qe.Filter:
    # qdrant_edge 0.9 reads a Python bool as an integer (bool subclasses int), and 1 never matches a stored
    # true; numpy's bool is no int, so it reaches the engine as a bool.
    unstaged = [qe.FieldCondition(key=STAGED_FIELD, match=qe.MatchValue(np.True_))]
    if filter is None:
        return qe.Filter(must_not=unstaged)
    conditions = []
    if filter.sources is not None:
        conditions.append(qe.FieldCondition(key="source", match=qe.MatchAny(any=list(filter.sources))))
    if filter.tags is not None:
        conditions.append(qe.FieldCondition(key="tags", match=qe.MatchAny(any=list(filter.tags))))
    return qe.Filter(must=conditions, must_not=unstaged)
