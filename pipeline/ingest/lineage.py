"""Ingest manifests: what one ingest put in a collection (its sources with hashes, or a table and its version; the
chunking; the embedder and its dimension; counts; time), identified by a digest of all of it.

A manifest is kept in the collection's record (pipeline/store/record.py) and logged to MLflow as a dataset input of
each compile run that used the collection, so a registered model can be traced back to the documents it searches.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

CONTENT_KEYS = ("collection", "kind", "root", "version", "sources", "chunking", "embedder", "dim")
"""What a manifest says about the collection's contents; the rest (counts, time, id) describes the run."""


def ingest_manifest(*, collection: str, kind: str, root: str, sources: list[dict[str, Any]], chunking: dict[str, Any],
                    embedder: str, dim: int, counts: dict[str, int], version: str | None = None) -> dict[str, Any]:
    """A manifest; its `id` is the sha256 of its JSON text without the id."""
    manifest = {"collection": collection, "kind": kind, "root": root, "version": version, "sources": sources,
                "chunking": chunking, "embedder": embedder, "dim": dim, "counts": counts, "created": time.time()}
    manifest["id"] = manifest_digest(manifest)
    return manifest


def manifest_digest(manifest: dict[str, Any]) -> str:
    body = {key: value for key, value in manifest.items() if key != "id"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def same_contents(first: dict[str, Any], second: dict[str, Any]) -> bool:
    """Whether two manifests describe the same collection contents (whatever the time and counts of their runs)."""
    return all(first.get(key) == second.get(key) for key in CONTENT_KEYS)


def chunking_settings(chunker: Any) -> dict[str, Any]:
    """How a chunker cuts text, as a manifest records it: its kind and, where it has them, size and overlap."""
    settings: dict[str, Any] = {"strategy": type(chunker).__name__}
    for name in ("size", "overlap", "breakpoint_percentile"):
        if hasattr(chunker, name):
            settings[name] = getattr(chunker, name)
    return settings
