"""The vector store on a Qdrant server or cluster, through qdrant-client; the path for indexes that outgrow one machine.

Also accepts any existing `QdrantClient`, which is how tests run it on ``QdrantClient(":memory:")``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ApiException, UnexpectedResponse

from pipeline.errors import StoreError
from pipeline.store.base import DENSE_VECTOR, SPARSE_VECTOR, Condition, FieldRange, Leg, QueryVector
from pipeline.store.bm25 import SparseVector
from pipeline.store.engine import PAYLOAD_INDEXES, EngineStore, StoredPoint

INDEX_SCHEMAS = {"keyword": models.PayloadSchemaType.KEYWORD, "bool": models.PayloadSchemaType.BOOL}
URL_SETTING = "store.url in tessera.yaml or TESSERA_STORE__URL"
API_KEY_SETTING = "store.api_key in tessera.yaml or TESSERA_STORE__API_KEY"


class QdrantStore(EngineStore):
    """Collections on the Qdrant at `url` (with `api_key` for Qdrant Cloud), or on a given `client`.

    Connecting to `url` asks the server for its collections at once, so a wrong URL, a stopped server or a
    rejected key is a StoreError here rather than a failure in the middle of a query.
    """

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
        super().__init__(f"the Qdrant at {url}" if url is not None else "the Qdrant store")
        self._owns_client = client is None
        self._client = client if client is not None else _connect(url, api_key)

    # -- collections -------------------------------------------------------------------------

    def _collection_names(self) -> list[str]:
        return [collection.name for collection in self._client.get_collections().collections]

    def _collection_exists(self, name: str) -> bool:
        return self._client.collection_exists(name)

    def _create_collection(self, name: str, dense_dim: int) -> None:
        self._client.create_collection(
            name,
            vectors_config={DENSE_VECTOR: models.VectorParams(size=dense_dim, distance=models.Distance.COSINE)},
            sparse_vectors_config={SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        for field, kind in PAYLOAD_INDEXES.items():
            self._client.create_payload_index(name, field, INDEX_SCHEMAS[kind])

    def _drop_collection(self, name: str) -> None:
        self._client.delete_collection(name)

    def _read_vectors(self, name: str) -> tuple[int | None, list[str]]:
        params = self._client.get_collection(name).config.params
        dense = params.vectors.get(DENSE_VECTOR) if isinstance(params.vectors, Mapping) else None
        return (dense.size if dense else None), list(params.sparse_vectors or {})

    # -- points --------------------------------------------------------------------------------

    def _upsert_points(self, name: str, points: list[StoredPoint]) -> None:
        batch = [
            models.PointStruct(
                id=point.id,
                vector={using: _qdrant_vector(vector) for using, vector in point.vectors.items()},
                payload=point.payload,
            )
            for point in points
        ]
        self._client.upsert(name, batch, wait=True)

    def _delete_points(self, name: str, ids: list[str]) -> None:
        self._client.delete(name, models.PointIdsList(points=ids), wait=True)

    def _set_payload(self, name: str, ids: list[str], payload: dict[str, Any]) -> None:
        self._client.set_payload(name, payload, points=ids, wait=True)

    def _scroll(
        self, name: str, offset: Any, limit: int, with_payload: bool | list[str], where: Sequence[Condition]
    ) -> tuple[list[tuple[str, dict[str, Any]]], Any]:
        records, offset = self._client.scroll(
            name, limit=limit, offset=offset, with_payload=with_payload, with_vectors=False,
            scroll_filter=_qdrant_filter(where) if where else None,
        )
        return [(str(record.id), dict(record.payload or {})) for record in records], offset

    def _count(self, name: str) -> int:
        return self._client.count(name, exact=True).count

    def _score_legs(
        self, name: str, legs: Sequence[Leg], depth: int, conditions: Sequence[Condition], exact: bool
    ) -> list[list[tuple[str, float]]]:
        query_filter = _qdrant_filter(conditions)
        # Only an explicit request is sent: local mode warns about search params it cannot honour.
        params = models.SearchParams(exact=True) if exact else None
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
            for using, vector in legs
        ]
        responses = self._client.query_batch_points(name, requests)
        return [[(str(point.id), point.score) for point in response.points] for response in responses]

    def _retrieve_payloads(self, name: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        records = self._client.retrieve(name, list(ids), with_payload=True)
        return {str(record.id): dict(record.payload or {}) for record in records}

    # -- lifecycle -----------------------------------------------------------------------------

    def _release(self) -> None:
        """Close the connection if this store opened it; a client passed in stays with its owner."""
        if self._owns_client:
            self._client.close()


def _connect(url: str, api_key: str | None) -> QdrantClient:
    """A client for `url`, after one cheap call that proves the server answers and accepts the key."""
    try:
        # Without the version check, which would warn from a background thread when nothing answers; the
        # client returned below runs it against a server known to answer.
        probe = QdrantClient(url=url, api_key=api_key, check_compatibility=False)
    except ValueError as error:  # a malformed URL or an unknown scheme
        raise StoreError(
            f"{url!r} is not a Qdrant URL ({error}): use e.g. http://localhost:6333 ({URL_SETTING})."
        ) from error
    try:
        probe.get_collections()
    except UnexpectedResponse as error:
        if error.status_code in (401, 403):
            raise StoreError(
                f"The Qdrant at {url} refused the connection ({error.status_code} {error.reason_phrase}): "
                f"check the api key ({API_KEY_SETTING})."
            ) from error
        raise StoreError(
            f"The server at {url} answered {error.status_code} {error.reason_phrase} when asked for its "
            f"collections: is this the URL of a Qdrant server? Set it with {URL_SETTING}."
        ) from error
    except ApiException as error:  # ResponseHandlingException: the request got no answer
        raise StoreError(
            f"Cannot reach the Qdrant at {url} ({error}). Check that the server is running, that the URL's "
            f"host and port are right (set with {URL_SETTING}), and, if the server needs one, the api key "
            f"({API_KEY_SETTING})."
        ) from error
    finally:
        probe.close()
    return QdrantClient(url=url, api_key=api_key)


def _qdrant_vector(vector: QueryVector) -> list[float] | models.SparseVector:
    if isinstance(vector, SparseVector):
        return models.SparseVector(indices=list(vector.indices), values=list(vector.values))
    return vector.tolist()


def _qdrant_filter(conditions: Sequence[Condition]) -> models.Filter:
    def condition(match: Condition) -> models.FieldCondition:
        if isinstance(match, FieldRange):
            bounds = models.Range(gt=match.gt, gte=match.gte, lt=match.lt, lte=match.lte)
            return models.FieldCondition(key=match.field, range=bounds)
        if len(match.values) > 1:
            return models.FieldCondition(key=match.field, match=models.MatchAny(any=list(match.values)))
        return models.FieldCondition(key=match.field, match=models.MatchValue(value=match.values[0]))

    return models.Filter(
        must=[condition(match) for match in conditions if not match.negate],
        must_not=[condition(match) for match in conditions if match.negate],
    )
