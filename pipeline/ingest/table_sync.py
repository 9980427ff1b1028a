"""Ingest a table as a sync: each row is a document whose source is ``<table>#<row id>`` and whose version is its
content hash, written through the same staged batches as files (pipeline/ingest/sync.py), so a search never sees half
of a row's update and a killed run is finished by the next.

A version already applied completely (the collection's record says so) is not read again. A new Delta version
applies only the rows that changed (from the change feed when it is on, else from a diff on id and content hash),
and removes the ids that are gone. With the table's own vectors (`TableColumns.vector`) nothing is embedded: the
vectors are stored as they are, BM25 is built from the text, and the collection records the embedder the user
declared, which queries must then use.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from pipeline.documents import Chunk, Section, chunk_id
from pipeline.errors import IngestError
from pipeline.ingest.report import FileStatus, IndexedFile, IngestReport
from pipeline.ingest.sync import Ingestor
from pipeline.ingest.write_batch import WriteBatch
from pipeline.ingest.table import TableChanges, TableColumns, TableRow, TableVersion, open_table, read_changes
from pipeline.store.base import METADATA_FIELD, dimension_mismatch
from pipeline.store.record import CollectionRecord, open_collection, read_record

ROW_CHUNKING = {"strategy": "none (one chunk per row)"}

RowProgress = Callable[[int, int], None]
"""Called with (rows done, rows to do) as rows are written or found unchanged."""


class TableIngestor:
    """Syncs tables into the collection of `ingestor`, with its embedder, BM25 encoder, verdicts and batch size.

    `chunk` splits each row's text with the ingestor's chunker (managed embeddings only: a row's own vector stands
    for the whole row). `embedder_name` is the embedder a collection of the table's own vectors records; a managed
    one records the ingestor's.
    """

    def __init__(self, ingestor: Ingestor, *, chunk: bool = False, embedder_name: str | None = None) -> None:
        self.ingestor = ingestor
        self.chunk = chunk
        self.embedder_name = embedder_name

    def sync(self, path: str, columns: TableColumns, progress: RowProgress | None = None) -> IngestReport:
        started = time.perf_counter()
        if columns.vector and self.chunk:
            raise IngestError("--chunk splits a row's text into pieces, but a row's own vector (--vector) stands for "
                              "the whole row: use one or the other.")
        if columns.vector and not self.embedder_name:
            raise IngestError(
                "A table with its own vectors needs the embedder that computed them, so that questions are embedded "
                "the same way: pass --embedder NAME (a sentence-transformers name or folder)."
            )
        if self.embedder_name and not columns.vector:
            raise IngestError(f"--embedder names the model behind a table's own vectors (--vector COLUMN); without "
                              f"them the texts are embedded with the configured embedder "
                              f"({self.ingestor.embedder_name}, set with embedder: in tessera.yaml).")
        table = open_table(path)
        store, collection = self.ingestor.store, self.ingestor.collection
        report = IngestReport(root=table.uri)
        record = read_record(store, collection) if store.has_collection(collection) else None
        applied = record.applied.get(table.uri) if record is not None else None
        if applied == table.version:
            report.manifest_id = next((m["id"] for m in reversed(record.manifests) if m.get("root") == table.uri), None)
            report.seconds = time.perf_counter() - started
            return report
        changes = read_changes(table, columns, since=applied if table.kind == "delta" else None)
        self._open(changes, record)
        # A change feed names the rows to look at: only their points are read from the collection, not all of them.
        touched = None if changes.complete else \
            {f"{table.uri}#{row.id}" for row in changes.rows} | {f"{table.uri}#{row_id}" for row_id in changes.deleted}
        indexed = self.ingestor.indexed_under(table.uri, report, touched)
        tracker = _RowTracker(progress, len(changes.rows))
        batch = WriteBatch(self.ingestor, table.uri, report, tracker)
        for row in changes.rows:
            source = f"{table.uri}#{row.id}"
            report.hashes[source] = row.digest
            entry = indexed.files.get(source)
            if not self.ingestor.keep_if_complete(entry, source, row.digest, batch):
                self._write(row, source, entry, batch)
        batch.flush()
        gone = set(indexed.files) - set(report.hashes) if changes.complete else \
            {f"{table.uri}#{row_id}" for row_id in changes.deleted} & set(indexed.files)
        self.ingestor.delete_sources(indexed, gone, report, tracker)
        self.ingestor.record_manifest(report, "table", _table_sources(table, changes), self._dim(changes),
                                      version=table.version, chunking=None if self.chunk else ROW_CHUNKING)
        report.seconds = time.perf_counter() - started
        return report

    def _open(self, changes: TableChanges, record: CollectionRecord | None) -> None:
        """Open (or create) the collection for these rows: their vectors' dimension, the declared embedder."""
        store, collection = self.ingestor.store, self.ingestor.collection
        dim = changes.dim
        if self.embedder_name is None:
            embedder = self.ingestor.embedder
            open_collection(store, collection, embedder.dim, self.ingestor.embedder_name)
            return
        if dim is None:
            if record is None:
                raise IngestError("The table has no rows, so the dimension of its vectors is unknown; nothing was "
                                  "created. Ingest it once it has rows.")
            dim = record.dim
        if record is not None and record.dim != dim:
            raise dimension_mismatch(collection, record.dim, dim)
        open_collection(store, collection, dim, self.embedder_name)

    def _dim(self, changes: TableChanges) -> int:
        if self.embedder_name is None:
            return self.ingestor.embedder.dim
        return changes.dim or read_record(self.ingestor.store, self.ingestor.collection).dim

    def _write(self, row: TableRow, source: str, entry: IndexedFile | None, batch: WriteBatch) -> None:
        # Ids include the row's version, so a changed row's staged chunks never overwrite the visible ones.
        scope = f"{source}\x00{row.digest}"
        extra = {METADATA_FIELD: row.metadata} if row.metadata else None
        chunks = self._chunks(row, source)
        if not chunks:
            # A new one-chunk row replaces nothing and is whole once written, so it skips staging (and the second
            # write that switches a staged chunk on).
            batch.add(Chunk(text=row.text, source=source, heading=(), start=0, end=len(row.text),
                            id=chunk_id(scope, 0, row.text)), row.digest, 0, 1, 0, row.vector, extra,
                      staged=entry is not None)
        for index, chunk in enumerate(chunks):
            count = len(chunks) if index == len(chunks) - 1 else None
            batch.add(dataclasses.replace(chunk, id=chunk_id(scope, chunk.start, chunk.text)), row.digest, index,
                      count, 0, row.vector, extra)
        batch.finish(source, entry)

    def _chunks(self, row: TableRow, source: str) -> list[Chunk]:
        if not self.chunk:
            return []
        return [c for c in self.ingestor.chunker.split(Section(row.text), source) if c.text.strip()]


def _table_sources(table: TableVersion, changes: TableChanges) -> list[dict]:
    return [{"table": table.uri, "format": table.kind, "version": table.version,
             "read": "change feed" if not changes.complete else "all rows", "rows": len(changes.rows)}]


class _RowTracker:
    """Row counts for the progress callback: a row is done when it is written or found unchanged."""

    def __init__(self, callback: RowProgress | None, total: int) -> None:
        self.callback = callback
        self.total = total
        self.done_rows = 0

    def writing(self, source: str, chunks: int, position: int) -> None:
        return None

    def done(self, source: str, status: FileStatus, chunks: int) -> None:
        self.done_rows += 1
        if self.callback is not None and (self.done_rows % 1000 == 0 or self.done_rows == self.total):
            self.callback(self.done_rows, self.total)

    def deleted(self, source: str) -> None:
        return None
