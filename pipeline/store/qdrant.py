"""The vector store on a Qdrant server or cluster, through qdrant-client; the path for indexes that outgrow one machine.

Also accepts any existing `QdrantClient`, which is how tests run it on ``QdrantClient(":memory:")``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from pipeline.store.bm25 import SparseVector
from pipeline.documents import Chunk, Hit
from pipeline.errors import StoreError
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

UPSERT_BATCH = 256
SCAN_PAGE = 256
KEYWORD_FIELDS = ("source", "tags")


class QdrantStore(VectorStore):
    """Collections on the Qdrant at `url` (with `api_key` for Qdrant Cloud), or on a given `client`."""

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        client: QdrantClient | None = None,
    ) -> None:
        if (url is None) == (client is None):
            raise StoreError(f"Only one of (url, client) can be set, and one must be. url is {url!r}.")
        if client is not None and api_key is not None:
            raise StoreError("api_key is for connecting to url; a given client is already configured.")
        self._owns_client = client is None
        self._client = client if client is not None else QdrantClient(url=url, api_key=api_key)
        self._where = f"the Qdrant at {url}" if url is not None else "the Qdrant store"
        self._dims: dict[str, int] = {}
        self._closed = False

    # -- collections -------------------------------------------------------------------------

    def ensure_collection(self, name: str, dense_dim: int) -> None:
        self._check_open()
        check_collection_name(name)
        if self._client.collection_exists(name):
            stored = self._dim(name)
            if stored != dense_dim:
                raise dimension_mismatch(name, stored, dense_dim)
            return
        self._client.create_collection(
            name,
            vectors_config={DENSE_VECTOR: models.VectorParams(size=dense_dim, distance=models.Distance.COSINE)},
            sparse_vectors_config={SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        for field in KEYWORD_FIELDS:
            self._client.create_payload_index(name, field, models.PayloadSchemaType.KEYWORD)
        self._client.create_payload_index(name, STAGED_FIELD, models.PayloadSchemaType.BOOL)
        self._dims[name] = dense_dim
        log.info("Created collection %r (%d dims) in %s", name, dense_dim, self._where)

    def has_collection(self, name: str) -> bool:
        self._check_open()
        return self._client.collection_exists(name)

    def list_collections(self) -> list[str]:
        self._check_open()
        return sorted(collection.name for collection in self._client.get_collections().collections)

    def drop_collection(self, name: str) -> None:
        self._check_open()
        check_collection_name(name)
        self._dims.pop(name, None)
        if self._client.collection_exists(name):
            self._client.delete_collection(name)
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
            models.PointStruct(
                id=chunk.id,
                vector={
                    DENSE_VECTOR: matrix[row].tolist(),
                    SPARSE_VECTOR: models.SparseVector(
                        indices=list(sparse[row].indices), values=list(sparse[row].values)
                    ),
                },
                payload=chunk_payload(chunk, extra[row] if extra is not None else None),
            )
            for row, chunk in enumerate(chunks)
        ]
        for start in range(0, len(points), UPSERT_BATCH):
            self._client.upsert(name, points[start : start + UPSERT_BATCH], wait=True)

    def delete(self, name: str, ids: Sequence[str]) -> None:
        self._dim(name)
        if ids:
            self._client.delete(name, models.PointIdsList(points=list(ids)), wait=True)

    def set_payload(self, name: str, ids: Sequence[str], payload: Mapping[str, Any]) -> None:
        check_extra_fields(payload)
        self._dim(name)
        if ids and payload:
            self._client.set_payload(name, dict(payload), points=list(ids), wait=True)

    def scan(self, name: str, fields: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        self._dim(name)
        with_payload: bool | list[str] = list(fields) if fields else False
        offset = None
        while True:
            records, offset = self._client.scroll(
                name, limit=SCAN_PAGE, offset=offset, with_payload=with_payload, with_vectors=False
            )
            for record in records:
                yield str(record.id), dict(record.payload or {})
            if offset is None:
                return

    def count(self, name: str) -> int:
        self._dim(name)
        return self._client.count(name, exact=True).count

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
        legs = search_legs(dense, sparse, name, self._dim(name))
        if filter is not None and filter.matches_nothing():
            return []
        query_filter = _qdrant_filter(filter)
        # Only an explicit request is sent: local mode warns about search params it cannot honour.
        params = models.SearchParams(exact=True) if exact else None

        def score_legs(runnable: Sequence[Leg], depth: int) -> list[list[tuple[str, float]]]:
            requests = [
                models.QueryRequest(
                    query=_qdrant_vector(vector),
                    using=using,
                    filter=query_filter,
                    params=params,
                    limit=depth,
                    with_payload=False,
                    with_vector=False,
                )
                for using, vector in runnable
            ]
            responses = self._client.query_batch_points(name, requests)
            return [[(str(point.id), point.score) for point in response.points] for response in responses]

        def fetch_payloads(ids: Sequence[str]) -> dict[str, dict[str, Any]]:
            records = self._client.retrieve(name, list(ids), with_payload=True) if ids else []
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
        """Close the connection if this store opened it; a client passed in stays with its owner."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            self._client.close()

    # -- internals -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"The store on {self._where} is closed; open it again with open_store(url=...).")

    def _dim(self, name: str) -> int:
        """The collection's dense dimension, raising CollectionNotFoundError if it does not exist."""
        self._check_open()
        if name in self._dims:
            return self._dims[name]
        check_collection_name(name)
        if not self._client.collection_exists(name):
            raise collection_not_found(name, self.list_collections(), self._where)
        vectors = self._client.get_collection(name).config.params.vectors
        params = vectors.get(DENSE_VECTOR) if isinstance(vectors, Mapping) else None
        if params is None:
            raise StoreError(
                f"Collection {name!r} in {self._where} has no {DENSE_VECTOR!r} vector: "
                "it was not written by Tessera. Use another collection."
            )
        self._dims[name] = params.size
        return params.size


def _qdrant_vector(vector: np.ndarray | SparseVector) -> list[float] | models.SparseVector:
    if isinstance(vector, SparseVector):
        return models.SparseVector(indices=list(vector.indices), values=list(vector.values))
    return vector.tolist()


def _qdrant_filter(filter: SearchFilter | None) -> models.Filter:
    unstaged: list[models.Condition] = [models.FieldCondition(key=STAGED_FIELD, match=models.MatchValue(value=True))]
    if filter is None:
        return models.Filter(must_not=unstaged)
    conditions: list[models.Condition] = []
    if filter.sources is not None:
        conditions.append(models.FieldCondition(key="source", match=models.MatchAny(any=list(filter.sources))))
    if filter.tags is not None:
        conditions.append(models.FieldCondition(key="tags", match=models.MatchAny(any=list(filter.tags))))
    return models.Filter(must=conditions, must_not=unstaged)
