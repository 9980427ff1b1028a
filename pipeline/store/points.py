"""Direct access to a collection's points for users who manage the index themselves: upsert, get and delete by
their own ids, with text, payload metadata and (optionally) their own vectors.

A record's point id derives from its id, so the same id always names the same point. Without a vector the text is
embedded with the embedder the collection records; BM25 is always built from the text. Every record is checked
before anything is written, so a bad one leaves the collection as it was.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from pipeline.documents import Chunk
from pipeline.errors import StoreError
from pipeline.store.base import METADATA_FIELD, STAGED_FIELD, VectorStore, dimension_mismatch
from pipeline.store.bm25 import Bm25Encoder
from pipeline.store.record import check_embedder, open_collection, read_record

RECORD_ID_FIELD = "record_id"
_NAMESPACE = uuid.UUID("0f6c1c56-9f63-4c5e-9d1e-7e55e4a0c0de")


class Embedder(Protocol):
    """What upsert embeds texts with: pipeline.retrieval.embed.Embedder, named here so the store imports no
    retrieval."""

    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


class PointRecordError(StoreError):
    """A record given to upsert that cannot be stored as it is."""


@dataclass(frozen=True)
class PointRecord:
    """One point as a user sees it: their id, the text, metadata for filters, and their vector if they have one."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    vector: list[float] | None = None
    source: str | None = None  # what citations name; default: the collection and the id

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "record") -> PointRecord:
        """A record from JSON (`id`, `text`, optional `metadata`, `vector`, `source`); bad fields name `where`."""
        if not isinstance(data, Mapping):
            raise PointRecordError(f"{where}: a record is a JSON object with id and text, got {type(data).__name__}.")
        unknown = sorted(set(data) - {"id", "text", "metadata", "vector", "source"})
        if unknown:
            raise PointRecordError(f"{where}: unknown fields {unknown}; a record has id, text, metadata, vector and "
                                   "source.")
        if data.get("id") in (None, "") or not isinstance(data["id"], (str, int)):
            raise PointRecordError(f"{where}: every record needs an id (a string or an integer).")
        if not isinstance(data.get("text"), str):
            raise PointRecordError(f"{where} (id {data['id']!r}): text must be a string.")
        metadata = data.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            raise PointRecordError(f"{where} (id {data['id']!r}): metadata must be an object of column: value.")
        vector = data.get("vector")
        if vector is not None:
            if not isinstance(vector, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                       for x in vector):
                raise PointRecordError(f"{where} (id {data['id']!r}): vector must be a list of numbers.")
            if not all(math.isfinite(x) for x in vector):
                raise PointRecordError(f"{where} (id {data['id']!r}): the vector holds NaN or infinite values.")
        return cls(str(data["id"]), data["text"], dict(metadata), vector, data.get("source"))


def point_id(record_id: str) -> str:
    """The point id of a record id (a UUID, as Qdrant needs)."""
    return str(uuid.uuid5(_NAMESPACE, record_id))


def upsert_points(store: VectorStore, collection: str, records: Sequence[PointRecord], *,
                  embedder: Embedder | None = None, embedder_name: str | None = None,
                  bm25: Bm25Encoder | None = None) -> int:
    """Insert or replace `records`; returns how many were written.

    Records without a vector are embedded with `embedder`, which must be the one the collection records
    (`embedder_name`). A collection that does not exist is created, recording `embedder_name`.
    """
    if not records:
        return 0
    ids = [record.id for record in records]
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise PointRecordError(f"ids repeat in the records ({', '.join(map(repr, repeated[:5]))}); give each once.")
    given = {len(record.vector) for record in records if record.vector is not None}
    record = read_record(store, collection) if store.has_collection(collection) else None
    if record is not None and embedder_name is not None:
        check_embedder(record, collection, embedder_name)
    dim = record.dim if record is not None else (next(iter(given)) if given else getattr(embedder, "dim", None))
    for size in sorted(given):
        if size != dim:
            if record is None:
                raise PointRecordError(f"The records' vectors have mixed dimensions ({sorted(given)}); give one.")
            raise dimension_mismatch(collection, dim, size)
    missing = [r.id for r in records if r.vector is None]
    if missing and embedder is None:
        raise PointRecordError(f"Records {', '.join(map(repr, missing[:5]))} have no vector, and no embedder was given "
                               "to embed their text: add vectors, or let Tessera embed them (scripts/index.py does).")
    if dim is None or (record is None and embedder_name is None):
        raise PointRecordError(f"Collection {collection!r} does not exist; creating it needs the embedder name "
                               "(--embedder NAME), which queries will embed questions with.")
    if record is None:
        open_collection(store, collection, dim, embedder_name)
    dense = np.zeros((len(records), dim), dtype=np.float32)
    if missing:
        embedded = embedder.encode([r.text for r in records if r.vector is None])
        if embedded.shape[1] != dim:
            raise dimension_mismatch(collection, dim, embedded.shape[1])
        dense[[i for i, r in enumerate(records) if r.vector is None]] = embedded
    for i, r in enumerate(records):
        if r.vector is not None:
            dense[i] = np.asarray(r.vector, dtype=np.float32)
    if (np.linalg.norm(dense, axis=1) == 0).any():
        raise PointRecordError("A record's vector is all zeros, which has no direction for cosine similarity.")
    chunks = [Chunk(text=r.text, source=r.source or f"{collection}#{r.id}", heading=(), start=0, end=len(r.text),
                    id=point_id(r.id)) for r in records]
    payloads = [{RECORD_ID_FIELD: r.id, METADATA_FIELD: r.metadata, STAGED_FIELD: False} for r in records]
    sparse = (bm25 or Bm25Encoder()).encode_documents([r.text for r in records])
    store.upsert(collection, chunks, dense, sparse, payloads)
    return len(records)


def get_points(store: VectorStore, collection: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """{record id: {text, source, metadata, ...payload}} for the ids the collection holds."""
    found = store.retrieve(collection, [point_id(str(i)) for i in ids])
    by_point = {point_id(str(i)): str(i) for i in ids}
    return {by_point[pid]: {"id": by_point[pid], **payload} for pid, payload in found.items()}


def delete_points(store: VectorStore, collection: str, ids: Sequence[str]) -> list[str]:
    """Delete the records with these ids; returns the ids that were there."""
    present = list(get_points(store, collection, ids))
    if present:
        store.delete(collection, [point_id(i) for i in present])
    return present
