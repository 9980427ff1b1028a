"""The index snapshot a model carries: one collection of the embedded store, packed as a gzip tar, unpacked into a
private folder by each process that serves the model.

Qdrant Edge preallocates its files (32 MB pages and WAL segments, mostly zeros) as sparse files: a plain copy
writes every zero, so a one-document collection took 183 MB in the registry and in every worker. Packed, the zeros
compress away; unpacked, runs of zeros become holes again, so a worker's copy takes the disk space of its data.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from pipeline.errors import ConfigError

SNAPSHOT_NAME = "index.tar.gz"
LOCK_FILES = frozenset({".tessera.lock"})
BLOCK = 1 << 16


def pack_collection(store_path: Path, collection: str, target: Path) -> Path:
    """Write `<store_path>/<collection>` (the store closed, so it is flushed) to the archive `target`."""
    source = Path(store_path) / collection
    if not source.is_dir():
        raise ConfigError(f"The store {store_path} has no collection {collection!r} to put in the model; ingest it first.")

    def without_locks(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if Path(member.name).name in LOCK_FILES else member

    with tarfile.open(target, "w:gz", compresslevel=1) as archive:
        archive.add(source, arcname=collection, filter=without_locks)
    return target


def unpack_private_copy(archive: Path) -> Path:
    """Unpack the archive into a new folder only this process uses (a store folder holding the collection),
    removed when the process exits; returns the folder."""
    target = Path(tempfile.mkdtemp(prefix=f"tessera-index-{os.getpid()}-"))
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    with tarfile.open(archive, "r:gz") as packed:
        for member in packed:
            path = target / member.name
            if not path.resolve().is_relative_to(target.resolve()) or not (member.isdir() or member.isfile()):
                raise ConfigError(f"The model's index snapshot holds {member.name!r}, which is not a file of the index.")
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                _write_sparse(packed.extractfile(member), path, member.size)
    return target


def _write_sparse(source, path: Path, size: int) -> None:
    """Copy `source` to `path`, seeking over all-zero blocks so they stay holes."""
    zeros = bytes(BLOCK)
    with path.open("wb") as out:
        while block := source.read(BLOCK):
            if block == zeros[: len(block)]:
                out.seek(len(block), os.SEEK_CUR)
            else:
                out.write(block)
        out.truncate(size)
