"""Opening a store: the embedded one in a folder or a Qdrant server at a URL, and the check that a collection exists.

Kept apart from `base` so that the backends, which build on `base`, and the factory, which picks one, import
in one direction.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import StoreError
from pipeline.store.base import VectorStore, collection_not_found
from pipeline.store.edge import EdgeStore


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
            "Pass --store PATH to a script for the embedded store, or set store.url in tessera.yaml "
            "(or TESSERA_STORE__URL) for a Qdrant server."
        )
    if path is not None:
        if api_key is not None:
            raise StoreError("api_key applies to a Qdrant server (url=...), not to an embedded store (path=...).")
        return EdgeStore(path)
    from pipeline.store.qdrant import QdrantStore  # qdrant-client takes ~0.9 s to import; only server users pay it

    return QdrantStore(url, api_key=api_key)


def require_collection(store: VectorStore, name: str) -> None:
    """Fail fast, before any model loads, when a collection has not been ingested."""
    if not store.has_collection(name):
        raise collection_not_found(name, store.list_collections(), "the store")
