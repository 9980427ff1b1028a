"""A collection's record: the embedder its dense vectors come from, declared once when it is created, and the
manifests of the ingests that wrote it (lineage), kept in the collection itself as one hidden point.

Kept in the collection rather than beside it so it goes wherever the collection goes: to a Qdrant server, and into a
model's index snapshot. Queries and writes read it to refuse an embedder other than the recorded one: vectors of two
models in one collection are compared as if they were alike, and the answers are silently worse.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.documents import Chunk
from pipeline.errors import StoreError
from pipeline.store.base import RECORD_ID, STAGED_FIELD, VectorStore
from pipeline.store.bm25 import SparseVector

RECORD_FIELD = "tessera_collection"
HISTORY_LIMIT = 50  # manifests kept per collection; older ones live on in the MLflow runs that logged them


class EmbedderMismatchError(StoreError):
    """A collection is used with another embedder than the one it records."""


@dataclass
class CollectionRecord:
    """What a collection records about itself. `manifests` holds the ingest manifests, oldest first; `applied` the
    version last applied completely per table or folder (the manifest's `root`)."""

    embedder: str
    dim: int
    created: float = field(default_factory=time.time)
    manifests: list[dict[str, Any]] = field(default_factory=list)
    applied: dict[str, str] = field(default_factory=dict)

    @property
    def manifest(self) -> dict[str, Any] | None:
        """The manifest of the latest ingest, or None before the first."""
        return self.manifests[-1] if self.manifests else None

    def current_manifests(self) -> list[dict[str, Any]]:
        """The latest manifest of each folder or table the collection holds (what its contents come from now)."""
        latest = {manifest["root"]: manifest for manifest in self.manifests}
        return sorted(latest.values(), key=lambda manifest: manifest["created"])

    def to_payload(self) -> dict[str, Any]:
        return {"embedder": self.embedder, "dim": self.dim, "created": self.created, "manifests": self.manifests,
                "applied": self.applied}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> CollectionRecord:
        return cls(embedder=str(payload["embedder"]), dim=int(payload["dim"]), created=float(payload["created"]),
                   manifests=list(payload.get("manifests") or []), applied=dict(payload.get("applied") or {}))


def read_record(store: VectorStore, collection: str) -> CollectionRecord | None:
    """The collection's record, or None for a collection written before records existed."""
    found = _record_payload(store, collection)
    return CollectionRecord.from_payload(found) if found is not None else None


def open_collection(store: VectorStore, collection: str, dim: int, embedder: str) -> CollectionRecord:
    """Create the collection (recording `embedder`) if it is missing; else check that it holds `dim`-dimensional
    vectors from `embedder`. A collection without a record is given one now, naming `embedder`."""
    store.ensure_collection(collection, dim)
    record = read_record(store, collection)
    if record is None:
        record = CollectionRecord(embedder=embedder, dim=dim)
        write_record(store, collection, record)
        return record
    check_embedder(record, collection, embedder)
    return record


def check_embedder(record: CollectionRecord, collection: str, embedder: str) -> None:
    if record.embedder != embedder:
        raise EmbedderMismatchError(
            f"Collection {collection!r} was indexed with the embedder {record.embedder!r} ({record.dim} dims), but "
            f"{embedder!r} was asked for: its vectors would not be comparable. Use embedder: {record.embedder} in "
            "tessera.yaml (or TESSERA_EMBEDDER), or index into another collection."
        )


def write_record(store: VectorStore, collection: str, record: CollectionRecord) -> None:
    record.manifests = record.manifests[-HISTORY_LIMIT:]
    holder = Chunk(text="", source="", heading=(), start=0, end=0, id=RECORD_ID)
    # A unit vector: cosine needs a non-zero one, and the point is staged, so no search ever scores it.
    vector = np.zeros((1, record.dim), dtype=np.float32)
    vector[0, 0] = 1.0
    store.upsert(collection, [holder], vector, [SparseVector()],
                 [{STAGED_FIELD: True, RECORD_FIELD: record.to_payload()}])


def add_manifest(store: VectorStore, collection: str, manifest: Mapping[str, Any], applied: str | None = None) -> None:
    """Append an ingest's manifest to the record (and, with `applied`, mark that version of its root as applied)."""
    record = read_record(store, collection)
    if record is None:
        raise StoreError(f"Collection {collection!r} has no record to add the manifest to; open it with "
                         "open_collection.")
    record.manifests.append(dict(manifest))
    if applied is not None:
        record.applied[str(manifest["root"])] = applied
    write_record(store, collection, record)


def _record_payload(store: VectorStore, collection: str) -> dict[str, Any] | None:
    found = store.record_payload(collection)
    return found.get(RECORD_FIELD) if found is not None else None
