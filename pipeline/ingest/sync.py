"""Ingest as a sync: make a collection hold exactly the chunks of the files under a folder, re-doing only what changed.

Each point carries `root`, `source`, `file_hash`, `chunk_index` and `staged`; the last chunk of a file also carries
`chunk_count`. A file version is its content hash, and chunk ids derive from folder, file, version and chunk, so
a new version never overwrites the points of the one it replaces, and re-writing a chunk is idempotent.

A file's new chunks are written staged (stored, never searched). Once all of them are written they are unstaged
and then the old version's chunks are deleted, so a search sees the old version or the new one, never half of
one. A run killed half-way leaves staged points behind, which the next sync of that folder deletes before it
re-does the file.

Only files whose real path lies inside the folder are read unless `follow_links` is set: a link out of the
folder is skipped, with the reason in the report. When a folder has moved (the folder its chunks were indexed
under no longer exists), a file with the same relative path and content is moved: its points are relabelled,
not embedded again. `prune()` removes whatever is left of folders that no longer exist. A moved point keeps its
id, so if the old folder reappears with the same files and is ingested too, it takes those points back and the
new folder's next sync indexes them again.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.documents import Chunk, chunk_id
from pipeline.errors import IngestError
from pipeline.ingest.chunking import Chunker
from pipeline.ingest.files import check_folder, file_hash, list_files, skip_reason
from pipeline.ingest.lineage import chunking_settings, ingest_manifest, same_contents
from pipeline.ingest.parse import SUPPORTED_SUFFIXES, parse_file
from pipeline.ingest.report import FileTracker, IndexedFile, IngestReport, ProgressCallback, ProgressTracker
from pipeline.ingest.write_batch import WriteBatch
from pipeline.retrieval.embed import Embedder
from pipeline.retrieval.verdicts import VERDICT_FIELD, ContextVerdicts
from pipeline.store.base import STAGED_FIELD, FieldMatch, VectorStore
from pipeline.store.bm25 import Bm25Encoder
from pipeline.store.record import add_manifest, open_collection, read_record
from pipeline.terminal import printable

log = logging.getLogger(__name__)

UNNAMED_EMBEDDER = "unnamed"
SYNC_FIELDS = ("root", "source", "file_hash", "chunk_count", STAGED_FIELD, VERDICT_FIELD)

@dataclass
class _Indexed:
    """One scan of the collection, as the sync of one folder needs it."""

    files: dict[str, IndexedFile] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)
    gone: dict[str, dict[str, IndexedFile]] = field(default_factory=dict)
    gone_counts: Counter[str] = field(default_factory=Counter)


class Ingestor:
    """Parses, chunks, embeds (dense + BM25) and writes files into one collection.

    `follow_links` lets a sync read files and folders that links inside the folder point to elsewhere;
    off by default, since a link can expose any file the process can read (``docs/x.txt -> /etc/passwd``).
    With `verdicts`, each new chunk is judged by the context guard as it is written and the verdict stored with it
    (field `context_verdict`), so queries look it up instead of running the guard. `embedder_name` is what a new
    collection records as its embedder (default: the embedder's `name`); a collection recording another is refused.
    """

    def __init__(
        self,
        store: VectorStore,
        collection: str,
        embedder: Embedder,
        chunker: Chunker,
        bm25: Bm25Encoder | None = None,
        batch_size: int = 512,
        follow_links: bool = False,
        verdicts: ContextVerdicts | None = None,
        embedder_name: str | None = None,
    ) -> None:
        self.store = store
        self.collection = collection
        self.embedder = embedder
        self.chunker = chunker
        self.bm25 = bm25 or Bm25Encoder()
        self.batch_size = batch_size
        self.follow_links = follow_links
        self.verdicts = verdicts
        # An embedder that does not say its name (a test double) is recorded as "unnamed" and cannot be told apart.
        self.embedder_name = embedder_name or getattr(embedder, "name", None) or UNNAMED_EMBEDDER

    def sync(self, folder: str | Path, progress: ProgressCallback | None = None) -> IngestReport:
        started = time.perf_counter()
        root = check_folder(folder)
        files, left_out = list_files(root, self.follow_links)
        report = IngestReport(root=str(root), skipped=[(p.relative_to(root).as_posix(), why) for p, why in left_out])
        if not files:
            listed = ", ".join(printable(source) for source, _ in report.skipped[:10]) or "none"
            raise IngestError(
                f"No supported documents in {printable(root)} (supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}; "
                f"files skipped: {listed}). Nothing was changed in the index."
            )
        open_collection(self.store, self.collection, self.embedder.dim, self.embedder_name)
        indexed = self.indexed_under(str(root), report)

        tracker = FileTracker(progress, root, files)
        batch = WriteBatch(self, str(root), report, tracker)
        seen = set()
        for path in files:
            source = path.relative_to(root).as_posix()
            if self._sync_file(root, path, source, indexed, batch):
                seen.add(source)
        batch.flush()
        self._judge_again(indexed, report)

        self.delete_sources(indexed, set(indexed.files) - seen, report, tracker)
        report.gone_roots = {old: count for old, count in sorted(indexed.gone_counts.items()) if count > 0}
        sources = [{"source": source, "sha256": digest} for source, digest in sorted(report.hashes.items())]
        self.record_manifest(report, "folder", sources, self.embedder.dim)
        report.seconds = time.perf_counter() - started
        return report

    def record_manifest(self, report: IngestReport, kind: str, sources: list[dict[str, Any]], dim: int,
                        version: str | None = None, chunking: dict[str, Any] | None = None) -> None:
        """Add this ingest's lineage manifest to the collection's record, unless the latest one of the same root
        already describes what the collection holds (then nothing is written); `version` marks it as applied."""
        counts = {"sources": len(sources), "chunks_written": report.chunks_written,
                  "chunks_deleted": report.chunks_deleted, "chunks_moved": report.chunks_moved,
                  "points": self.store.count(self.collection)}
        manifest = ingest_manifest(collection=self.collection, kind=kind, root=report.root, sources=sources,
                                   chunking=chunking or chunking_settings(self.chunker), embedder=self.embedder_name,
                                   dim=dim, counts=counts, version=version)
        record = read_record(self.store, self.collection)
        earlier = reversed(record.manifests) if record else ()
        previous = next((m for m in earlier if m.get("root") == report.root), None)
        if previous is not None and same_contents(previous, manifest):
            report.manifest_id = previous["id"]
            return
        add_manifest(self.store, self.collection, manifest, applied=version)
        report.manifest_id = manifest["id"]

    def indexed_under(self, root: str, report: IngestReport, sources: set[str] | None = None) -> _Indexed:
        """What the collection holds under `root` (only of `sources`, when given), after deleting the staged chunks
        an interrupted ingest left there."""
        indexed = self._scan(root, sources)
        if indexed.leftovers:
            self.store.delete(self.collection, indexed.leftovers)
            report.chunks_deleted += len(indexed.leftovers)
            log.info(
                "removed %d staged chunks left by an interrupted ingest of %s", len(indexed.leftovers), printable(root)
            )
        return indexed

    def delete_sources(self, indexed: _Indexed, sources: Iterable[str], report: IngestReport,
                       tracker: ProgressTracker) -> None:
        """Remove every chunk of `sources` (files or rows that are gone)."""
        for source in sorted(sources):
            ids = sorted(indexed.files[source].all_ids())
            self.store.delete(self.collection, ids)
            report.deleted.append(source)
            report.chunks_deleted += len(ids)
            tracker.deleted(source)

    def prune(self) -> dict[str, int]:
        """Delete the chunks of every folder that no longer exists; returns the chunks removed per folder."""
        if not self.store.has_collection(self.collection):
            return {}
        gone: dict[str, list[str]] = defaultdict(list)
        exists: dict[str, bool] = {}
        for point_id, payload in self.store.scan(self.collection, ["root"]):
            root = payload.get("root")
            if isinstance(root, str) and not _root_exists(root, exists):
                gone[root].append(point_id)
        for root, ids in sorted(gone.items()):
            self.store.delete(self.collection, ids)
            log.info("pruned %d chunks of %s, which no longer exists", len(ids), printable(root))
        return {root: len(ids) for root, ids in sorted(gone.items())}

    def _scan(self, root: str, sources: set[str] | None = None) -> _Indexed:
        indexed = _Indexed()
        exists: dict[str, bool] = {}
        for point_id, payload in self._points(root, sources):
            point_root = payload.get("root")
            if point_root == root:
                if payload.get(STAGED_FIELD):
                    indexed.leftovers.append(point_id)
                    continue
                files = indexed.files
            elif isinstance(point_root, str) and not _root_exists(point_root, exists):
                indexed.gone_counts[point_root] += 1
                if payload.get(STAGED_FIELD):
                    continue
                files = indexed.gone.setdefault(point_root, {})
            else:
                continue
            entry = files.setdefault(payload["source"], IndexedFile())
            digest = payload.get("file_hash", "")
            entry.ids_by_hash[digest].add(point_id)
            verdict = payload.get(VERDICT_FIELD)
            entry.fingerprints[point_id] = verdict.get("fingerprint") if isinstance(verdict, dict) else None
            if payload.get("chunk_count") is not None:
                entry.complete_counts[digest] = int(payload["chunk_count"])
        return indexed

    def _points(self, root: str, sources: set[str] | None) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every point with its sync fields; with `sources`, only theirs and the staged ones under `root` (a change
        feed names the few rows to look at, and a killed run's leftovers are staged)."""
        if sources is None:
            yield from self.store.scan(self.collection, SYNC_FIELDS)
            return
        seen: set[str] = set()
        wanted = [FieldMatch("source", tuple(sorted(sources)))] if sources else None
        staged = [FieldMatch("root", (root,)), FieldMatch(STAGED_FIELD, (True,))]
        for where in (wanted, staged):
            for point_id, payload in self.store.scan(self.collection, SYNC_FIELDS, where) if where else ():
                if point_id not in seen:
                    seen.add(point_id)
                    yield point_id, payload

    def _sync_file(self, root: Path, path: Path, source: str, indexed: _Indexed, batch: WriteBatch) -> bool:
        """Bring one file up to date; False when it was skipped (so its old chunks count as deleted)."""
        entry = indexed.files.get(source)
        # Checked again just before reading: the folder may have changed since it was listed.
        reason = skip_reason(root, path, self.follow_links)
        if reason is not None:
            batch.report.skipped.append((source, reason))
            batch.tracker.done(source, "skipped", 0)
            return False
        try:
            digest = file_hash(path)
        except OSError as exc:
            batch.fail(source, f"cannot read: {exc.strerror or exc}")
            return True
        batch.report.hashes[source] = digest
        if self.keep_if_complete(entry, source, digest, batch):
            return True
        if self._move(indexed, source, digest, str(root), batch.report):
            if entry is not None:
                self.delete_ids(entry.all_ids(), batch.report)
            batch.tracker.done(source, "moved", 0)
            return True
        index = 0
        previous: tuple[Chunk, int] | None = None
        try:
            for chunk, position in self._chunks(root, path, source, digest):
                if previous is not None:
                    batch.add(previous[0], digest, index, None, previous[1])
                    index += 1
                previous = chunk, position
        except IngestError as exc:
            batch.fail(source, str(exc))
            return True
        if previous is None:
            batch.fail(source, "no text found in the file")
            return True
        # The last chunk carries the file's chunk count, which marks the version complete.
        batch.add(previous[0], digest, index, index + 1, previous[1])
        batch.finish(source, entry)
        return True

    def keep_if_complete(self, entry: IndexedFile | None, source: str, digest: str, batch: WriteBatch) -> bool:
        """True when this version of `source` is indexed completely (it is kept, any other version deleted)."""
        if entry is None or not entry.is_complete(digest):
            return False
        # Other versions linger only when a run was killed between unstaging this one and deleting them.
        self.delete_ids(entry.all_ids() - entry.ids_by_hash[digest], batch.report)
        batch.report.unchanged.append(source)
        batch.tracker.done(source, "unchanged", 0)
        return True

    def _judge_again(self, indexed: _Indexed, report: IngestReport) -> None:
        """Store fresh verdicts for the unchanged chunks whose stored verdict is missing or was made by another guard
        configuration (threshold, examples, version): they were judged live on every question until now."""
        if not self.verdicts:
            return
        unchanged = set(report.unchanged)
        stale = {point_id for source, entry in indexed.files.items() if source in unchanged
                 for point_id, fingerprint in entry.fingerprints.items() if fingerprint != self.verdicts.fingerprint}
        if not stale:
            return
        rows = [(point_id, payload["text"]) for point_id, payload in self.store.scan(self.collection, ["text"])
                if point_id in stale]
        for start in range(0, len(rows), self.batch_size):
            page = rows[start : start + self.batch_size]
            for (point_id, _), verdict in zip(page, self.verdicts.judge([text for _, text in page])):
                if verdict is not None:
                    self.store.set_payload(self.collection, [point_id], {VERDICT_FIELD: verdict})
        report.verdicts_refreshed += len(rows)
        log.info("judged %d unchanged chunks again under context guard %s", len(rows), self.verdicts.fingerprint)

    def _move(self, indexed: _Indexed, source: str, digest: str, root: str, report: IngestReport) -> bool:
        """Relabel this file's complete version under a folder that no longer exists as this folder's."""
        for old_root in sorted(indexed.gone):
            entry = indexed.gone[old_root].get(source)
            if entry is not None and entry.is_complete(digest):
                del indexed.gone[old_root][source]
                ids = sorted(entry.ids_by_hash[digest])
                self.store.set_payload(self.collection, ids, {"root": root})
                indexed.gone_counts[old_root] -= len(ids)
                report.moved.append((source, old_root))
                report.chunks_moved += len(ids)
                return True
        return False

    def delete_ids(self, ids: set[str], report: IngestReport) -> None:
        if ids:
            self.store.delete(self.collection, sorted(ids))
            report.chunks_deleted += len(ids)

    def _chunks(self, root: Path, path: Path, source: str, digest: str) -> Iterator[tuple[Chunk, int]]:
        """The file's non-blank chunks, each with how many bytes into the parsed text it ends (for progress)."""
        # Ids include the folder and the version: the same file in two folders never collides, and a new
        # version's staged chunks never overwrite the old version's visible ones.
        scope = f"{root}/{source}\x00{digest}"
        consumed = 0
        for section in parse_file(path):
            size = len(section.text.encode("utf-8"))
            chars = max(len(section.text), 1)
            for chunk in self.chunker.split(section, source):
                if chunk.text.strip():
                    position = consumed + size * (chunk.end - section.start) // chars
                    yield dataclasses.replace(chunk, id=chunk_id(scope, chunk.start, chunk.text)), position
            consumed += size


def _root_exists(root: str, cache: dict[str, bool]) -> bool:
    if root not in cache:
        cache[root] = Path(root).is_dir()
    return cache[root]
