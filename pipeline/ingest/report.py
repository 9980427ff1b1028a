"""What an ingest reports: progress events while it runs, the report at its end, and what the collection holds per
document (its point ids by version), which the sync and its write batches share."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from pipeline.ingest.files import file_size
from pipeline.terminal import printable

FileStatus = Literal["writing", "indexed", "unchanged", "moved", "skipped", "failed", "deleted"]


@dataclass(frozen=True)
class IngestProgress:
    """Where a sync stands: passed to the progress callback after every write and for every finished file.

    `status` is "writing" while a file's chunks are being written (a large file sends many of these), then
    what became of the file. `bytes_done` advances within a file as its chunks are written.
    """

    source: str
    status: FileStatus
    chunks: int
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int


ProgressCallback = Callable[[IngestProgress], None]


@dataclass
class IngestReport:
    """What one ingest did, file by file. `skipped` and `failed` pair a file with the reason."""

    root: str
    indexed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    gone_roots: dict[str, int] = field(default_factory=dict)
    chunks_written: int = 0
    chunks_moved: int = 0
    chunks_deleted: int = 0
    verdicts_refreshed: int = 0
    seconds: float = 0.0
    hashes: dict[str, str] = field(default_factory=dict)  # source -> the content hash of the version now indexed
    manifest_id: str | None = None  # the lineage manifest this ingest left in the collection's record

    def lines(self) -> list[str]:
        """The report for a terminal, every file name escaped (see names.printable)."""
        lines = [
            f"{printable(self.root)}: {len(self.indexed)} indexed, {len(self.unchanged)} unchanged, "
            f"{len(self.moved)} moved, {len(self.deleted)} deleted, {len(self.skipped)} skipped, "
            f"{len(self.failed)} failed; {self.chunks_written} chunks written, {self.chunks_moved} moved, "
            f"{self.chunks_deleted} removed in {self.seconds:.1f}s"
        ]
        lines += [f"moved: {printable(source)} (was indexed under {printable(old)})" for source, old in self.moved]
        lines += [f"skipped: {printable(source)}: {printable(reason)}" for source, reason in self.skipped]
        lines += [f"failed: {printable(source)}: {printable(reason)}" for source, reason in self.failed]
        lines += [
            f"{count} chunks remain from {printable(root)}, which no longer exists; run ingest with --prune to remove them"
            for root, count in sorted(self.gone_roots.items())
        ]
        return lines


@dataclass
class IndexedFile:
    """What the collection holds for one file: point ids per file version, and which versions are complete."""

    ids_by_hash: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    complete_counts: dict[str, int] = field(default_factory=dict)
    fingerprints: dict[str, str | None] = field(default_factory=dict)  # point id -> its stored verdict's fingerprint

    def is_complete(self, digest: str) -> bool:
        """True when every chunk of this version is indexed (other versions may linger beside it)."""
        ids = self.ids_by_hash.get(digest, ())
        return bool(ids) and self.complete_counts.get(digest) == len(ids)

    def all_ids(self) -> set[str]:
        return {point_id for ids in self.ids_by_hash.values() for point_id in ids}


class ProgressTracker(Protocol):
    """What a WriteBatch reports progress to: chunks being written, a source done, a source deleted."""

    def writing(self, source: str, chunks: int, position: int) -> None: ...

    def done(self, source: str, status: FileStatus, chunks: int) -> None: ...

    def deleted(self, source: str) -> None: ...


class FileTracker:
    """Counts files and bytes done and sends IngestProgress events to the callback, if there is one."""

    def __init__(self, callback: ProgressCallback | None, root: Path, files: list[Path]) -> None:
        self.callback = callback
        self.files_total = len(files)
        self.sizes = {path.relative_to(root).as_posix(): file_size(path) for path in files} if callback else {}
        self.bytes_total = sum(self.sizes.values())
        self.files_done = 0
        self.bytes_done = 0

    def writing(self, source: str, chunks: int, position: int) -> None:
        self._send(source, "writing", chunks, self.bytes_done + min(position, self.sizes.get(source, 0)))

    def done(self, source: str, status: FileStatus, chunks: int) -> None:
        self.files_done += 1
        self.bytes_done += self.sizes.get(source, 0)
        self._send(source, status, chunks, self.bytes_done)

    def deleted(self, source: str) -> None:
        self._send(source, "deleted", 0, self.bytes_done)

    def _send(self, source: str, status: FileStatus, chunks: int, bytes_done: int) -> None:
        if self.callback is not None:
            self.callback(
                IngestProgress(source, status, chunks, self.files_done, self.files_total, bytes_done, self.bytes_total)
            )
