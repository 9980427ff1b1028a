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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe
from filelock import FileLock, Timeout

from pipeline.errors import StoreError, StoreLockedError
from pipeline.store.base import DENSE_VECTOR, SPARSE_VECTOR, Condition, FieldRange, Leg, QueryVector
from pipeline.store.bm25 import SparseVector
from pipeline.store.engine import PAYLOAD_INDEXES, EngineStore, StoredPoint

log = logging.getLogger(__name__)

LOCK_FILE = ".tessera.lock"
CONFIG_FILE = "edge_config.json"  # written by Qdrant Edge into every shard folder
INDEX_SCHEMAS = {"keyword": qe.PayloadSchemaType.Keyword, "bool": qe.PayloadSchemaType.Bool}
# The engine's default search width (ef=100) gave recall@10 0.889 against exact search at 100k points;
# 256 gave 0.963 for about 0.5 ms more per query (benchmarks/query_latency.py).
DEFAULT_HNSW_EF = 256


class EdgeStore(EngineStore):
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
        super().__init__(f"the store {self.path}")
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
        self._written: set[str] = set()

    # -- collections -------------------------------------------------------------------------

    def _collection_names(self) -> list[str]:
        return [entry.name for entry in self.path.iterdir() if entry.is_dir() and (entry / CONFIG_FILE).is_file()]

    def _collection_exists(self, name: str) -> bool:
        # Listed rather than looked up: a name such as "../x" must not reach outside the store folder.
        return name in self._collection_names()

    def _create_collection(self, name: str, dense_dim: int) -> None:
        config = qe.EdgeConfig(
            vectors={DENSE_VECTOR: qe.EdgeVectorParams(size=dense_dim, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            hnsw_config=self._hnsw_config(),
            optimizers=self._optimizers_config(),
        )
        try:
            shard = qe.EdgeShard.create(str(self.path / name), config)
            for field, kind in PAYLOAD_INDEXES.items():
                shard.update(qe.UpdateOperation.create_field_index(field, INDEX_SCHEMAS[kind]))
        except Exception as error:  # Edge raises bare Exception for every engine failure
            raise StoreError(f"Cannot create collection {name!r} in {self.path}: {error}") from error
        self._shards[name] = shard

    def _drop_collection(self, name: str) -> None:
        shard = self._shards.pop(name, None)
        if shard is not None:
            shard.close()
        self._written.discard(name)
        shutil.rmtree(self.path / name)

    def _read_vectors(self, name: str) -> tuple[int | None, list[str]]:
        # EdgeShard has no config getter; the shard persists its EdgeConfig as JSON.
        config = json.loads((self.path / name / CONFIG_FILE).read_text(encoding="utf-8"))
        dense = config.get("vectors", {}).get(DENSE_VECTOR)
        return (int(dense["size"]) if dense else None), list(config.get("sparse_vectors", {}))

    # -- points --------------------------------------------------------------------------------

    def _upsert_points(self, name: str, points: list[StoredPoint]) -> None:
        batch = [
            qe.Point(point.id, {using: _edge_vector(vector) for using, vector in point.vectors.items()}, point.payload)
            for point in points
        ]
        self._update(name, qe.UpdateOperation.upsert_points(batch))

    def _delete_points(self, name: str, ids: list[str]) -> None:
        self._update(name, qe.UpdateOperation.delete_points(ids))

    def _set_payload(self, name: str, ids: list[str], payload: dict[str, Any]) -> None:
        self._update(name, qe.UpdateOperation.set_payload(ids, payload))

    def _scroll(
        self, name: str, offset: Any, limit: int, with_payload: bool | list[str], where: Sequence[Condition]
    ) -> tuple[list[tuple[str, dict[str, Any]]], Any]:
        records, offset = self._shard(name).scroll(
            qe.ScrollRequest(offset=offset, limit=limit, with_payload=with_payload, with_vector=False,
                             filter=_edge_filter(where) if where else None)
        )
        return [(str(record.id), dict(record.payload or {})) for record in records], offset

    def _count(self, name: str) -> int:
        return self._shard(name).count(qe.CountRequest(exact=True))

    def _score_legs(
        self, name: str, legs: Sequence[Leg], depth: int, conditions: Sequence[Condition], exact: bool
    ) -> list[list[tuple[str, float]]]:
        edge_filter = _edge_filter(conditions)
        params = qe.SearchParams(exact=exact) if exact else qe.SearchParams(hnsw_ef=self.hnsw_ef)
        requests = [
            qe.QueryRequest(
                limit=depth,
                query=qe.Query.Nearest(_edge_vector(vector), using=using),
                filter=edge_filter,
                params=params,
                with_payload=False,
                with_vector=False,
            )
            for using, vector in legs
        ]
        results = self._shard(name).query_batch(qe.QueryBatchRequest(requests))
        return [[(str(point.id), point.score) for point in points] for points in results]

    def _retrieve_payloads(self, name: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        records = self._shard(name).retrieve(list(ids), True, False)
        return {str(record.id): dict(record.payload or {}) for record in records}

    # -- lifecycle -----------------------------------------------------------------------------

    def _release(self) -> None:
        """Index what this store wrote, flush every open shard to disk and release the folder."""
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

    def _shard(self, name: str) -> qe.EdgeShard:
        shard = self._shards.get(name)
        if shard is not None:
            return shard
        self._dim(name)
        try:
            shard = qe.EdgeShard.load(str(self.path / name))
        except Exception as error:  # Edge raises bare Exception for every engine failure
            raise StoreError(f"Cannot open collection {name!r} in {self.path}: {error}") from error
        self._shards[name] = shard
        return shard

    def _update(self, name: str, operation: qe.UpdateOperation) -> None:
        self._shard(name).update(operation)
        self._written.add(name)

    def _hnsw_config(self) -> qe.HnswIndexConfig | None:
        if self._full_scan_threshold_kb is None:
            return None
        return qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=self._full_scan_threshold_kb)

    def _optimizers_config(self) -> qe.EdgeOptimizersConfig | None:
        if self._indexing_threshold_kb is None:
            return None
        return qe.EdgeOptimizersConfig(indexing_threshold=self._indexing_threshold_kb)


def _edge_vector(vector: QueryVector) -> list[float] | qe.SparseVector:
    if isinstance(vector, SparseVector):
        return qe.SparseVector(list(vector.indices), list(vector.values))
    return vector.tolist()


def _edge_filter(conditions: Sequence[Condition]) -> qe.Filter:
    def condition(match: Condition) -> qe.FieldCondition:
        if isinstance(match, FieldRange):
            bounds = qe.RangeFloat(gt=match.gt, gte=match.gte, lt=match.lt, lte=match.lte)
            return qe.FieldCondition(key=match.field, range=bounds)
        if len(match.values) > 1:
            return qe.FieldCondition(key=match.field, match=qe.MatchAny(any=list(match.values)))
        (value,) = match.values
        if isinstance(value, bool):
            # qdrant_edge 0.9 reads a Python bool as an integer (bool subclasses int), and 1 never matches a
            # stored true; numpy's bool is no int, so it reaches the engine as a bool.
            value = np.bool_(value)
        return qe.FieldCondition(key=match.field, match=qe.MatchValue(value))

    return qe.Filter(
        must=[condition(match) for match in conditions if not match.negate],
        must_not=[condition(match) for match in conditions if match.negate],
    )
