"""Tables as documents: a Parquet file (pyarrow) or a Delta table (deltalake, no Spark) read into rows with an id, a
text, optionally the user's own vector, and metadata columns; every row checked before anything is written.

A table's version is the Delta version number, or a Parquet file's sha256. A Delta table with the change data feed
on gives the rows changed since a version; otherwise every row is read and the sync diffs on id and content hash.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.errors import IngestError
from pipeline.ingest.files import file_hash
from pipeline.terminal import printable

log = logging.getLogger(__name__)

SHOWN = 5  # ids named in an error message
CDF_SETTING = "delta.enableChangeDataFeed"
CHANGE_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")


@dataclass(frozen=True)
class TableColumns:
    """Which columns hold a row's id, its text, its vector (None: Tessera embeds the text) and its metadata."""

    id: str
    text: str
    vector: str | None = None
    metadata: tuple[str, ...] = ()

    def names(self) -> list[str]:
        return list(dict.fromkeys([self.id, self.text, *([self.vector] if self.vector else []), *self.metadata]))


@dataclass(frozen=True)
class TableRow:
    id: str
    text: str
    vector: np.ndarray | None
    metadata: dict[str, Any]
    digest: str


@dataclass
class TableChanges:
    """Rows to bring up to date; with `complete`, every row of the version (ids not among them are gone), else only
    the changed rows, and `deleted` the ids the change feed deleted."""

    rows: list[TableRow]
    complete: bool
    deleted: set[str] = field(default_factory=set)

    @property
    def dim(self) -> int | None:
        return next((row.vector.shape[0] for row in self.rows if row.vector is not None), None)


@dataclass(frozen=True)
class TableVersion:
    """One version of a table: `uri` is what citations name (the resolved path)."""

    uri: str
    kind: Literal["parquet", "delta"]
    version: str
    change_feed: bool = False


def open_table(path: str | Path) -> TableVersion:
    """The table at `path` (a .parquet file, or a Delta table's folder) and its current version."""
    location = Path(path).expanduser()
    if not location.exists():
        raise IngestError(f"Table {printable(location)} does not exist. Pass a .parquet file or a Delta table's "
                          "folder.")
    uri = str(location.resolve())
    if location.is_file():
        return TableVersion(uri, "parquet", file_hash(location))
    table = _delta(location)
    configuration = table.metadata().configuration or {}
    return TableVersion(uri, "delta", str(table.version()), change_feed=configuration.get(CDF_SETTING) == "true")


def read_changes(table: TableVersion, columns: TableColumns, since: str | None = None) -> TableChanges:
    """The rows to sync: with `since` (a Delta version already applied) and the change feed on, only the rows changed
    after it; otherwise every row. Raises IngestError, before anything is written, on a column that is missing, a null
    or repeated id, a missing text, or a vector that is missing, of another length than the others, or not finite."""
    if table.kind == "parquet":
        return TableChanges(_rows(_read_parquet(table.uri, columns), columns, table.uri), complete=True)
    if since is not None and table.change_feed and int(since) < int(table.version):
        changed = _read_change_feed(table, columns, int(since))
        if changed is not None:
            return changed
    data = _delta(Path(table.uri)).to_pyarrow_table()
    _check_columns(data, columns, table.uri)
    return TableChanges(_rows(data.select(columns.names()), columns, table.uri), complete=True)


def _delta(location: Path) -> Any:
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError

    try:
        return DeltaTable(str(location))
    except DeltaError as exc:
        raise IngestError(
            f"{printable(location)} is a folder but not a Delta table ({exc}). Pass a Delta table's folder (one with a "
            "_delta_log), or a .parquet file."
        ) from None


def _read_parquet(uri: str, columns: TableColumns) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(uri)
    except (pa.ArrowInvalid, OSError) as exc:
        raise IngestError(f"{printable(uri)} is not a Parquet file ({exc}). Pass a .parquet file or a Delta "
                          "table.") from None
    _check_columns(schema, columns, uri)
    return pq.read_table(uri, columns=columns.names())


def _read_change_feed(table: TableVersion, columns: TableColumns, since: int) -> TableChanges | None:
    """The rows changed after version `since`, the last change of each id winning; None when the feed does not
    cover those versions (it was switched on later), so the caller reads the whole table."""
    import pyarrow as pa
    from deltalake.exceptions import DeltaError

    try:
        reader = _delta(Path(table.uri)).load_cdf(starting_version=since + 1, ending_version=int(table.version))
        feed = _without_views(pa.table(reader.read_all()))
    except DeltaError as exc:
        log.info("the change feed of %s does not cover versions %d..%s (%s); reading the whole table",
                 printable(table.uri), since + 1, table.version, exc)
        return None
    _check_columns(feed, columns, table.uri)
    kinds = feed.column("_change_type").to_pylist()
    versions = feed.column("_commit_version").to_pylist()
    ids = feed.column(columns.id).to_pylist()
    last: dict[str, tuple[int, int, int]] = {}
    for position, (kind, version, row_id) in enumerate(zip(kinds, versions, ids)):
        if kind == "update_preimage" or row_id is None:
            continue
        key = (int(version), 0 if kind == "delete" else 1, position)  # within a version, an insert follows a delete
        if str(row_id) not in last or key > last[str(row_id)]:
            last[str(row_id)] = key
    keep = sorted(key[2] for row_id, key in last.items() if kinds[key[2]] != "delete")
    deleted = {row_id for row_id, key in last.items() if kinds[key[2]] == "delete"}
    changed = feed.select(columns.names()).take(pa.array(keep, type=pa.int64()))
    return TableChanges(_rows(changed, columns, table.uri), complete=False, deleted=deleted)


def _without_views(data: Any) -> Any:
    """The table with string and binary views (what delta-rs returns) as plain strings and binaries, which every
    pyarrow kernel takes."""
    import pyarrow as pa

    plain = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}
    return data.cast(pa.schema([field.with_type(plain.get(field.type, field.type)) for field in data.schema]))


def _check_columns(data: Any, columns: TableColumns, uri: str) -> None:
    names = list(data.schema.names if hasattr(data, "schema") else data.names)
    present = [name for name in names if name not in CHANGE_COLUMNS]
    missing = [name for name in columns.names() if name not in names]
    if missing:
        raise IngestError(
            f"Table {printable(uri)} has no column {', '.join(repr(m) for m in missing)}; its columns are: "
            f"{', '.join(present)}. Name them with --id, --text, --vector and --metadata."
        )


def _rows(data: Any, columns: TableColumns, uri: str) -> list[TableRow]:
    ids = _ids(data.column(columns.id), columns.id, uri)
    texts = data.column(columns.text).to_pylist()
    missing_text = [row_id for row_id, text in zip(ids, texts) if text is None]
    if missing_text:
        raise IngestError(f"Table {printable(uri)}: {_some(missing_text)} have no {columns.text!r} (null). Every row "
                          "needs a text: fill it in or filter those rows out.")
    vectors = _vectors(data.column(columns.vector), ids, columns.vector, uri) if columns.vector else None
    metadata = {name: [_jsonable(value) for value in data.column(name).to_pylist()] for name in columns.metadata}
    rows = []
    for position, (row_id, text) in enumerate(zip(ids, texts)):
        meta = {name: values[position] for name, values in metadata.items()}
        vector = vectors[position] if vectors is not None else None
        rows.append(TableRow(row_id, str(text), vector, meta, _row_digest(str(text), vector, meta)))
    return rows


def _ids(column: Any, name: str, uri: str) -> list[str]:
    values = column.to_pylist()
    if column.null_count:
        positions = [position for position, value in enumerate(values) if value is None]
        raise IngestError(f"Table {printable(uri)}: {len(positions)} rows have a null id in {name!r} (row numbers "
                          f"{', '.join(str(p) for p in positions[:SHOWN])}). Every row needs an id.")
    ids = [str(value) for value in values]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        repeated = sorted({row_id for row_id in ids if row_id in seen or seen.add(row_id)})
        raise IngestError(f"Table {printable(uri)}: ids repeat in {name!r} ({_some(repeated, 'ids')}); an id must name "
                          "one row. Deduplicate the table and ingest again.")
    return ids


def _vectors(column: Any, ids: list[str], name: str, uri: str) -> np.ndarray:
    import pyarrow as pa

    chunked = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    kind = chunked.type
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)):
        raise IngestError(f"Table {printable(uri)}: column {name!r} holds {kind}, not vectors (lists of numbers).")
    if chunked.null_count:
        nulls = [row_id for row_id, valid in zip(ids, chunked.is_valid().to_pylist()) if not valid]
        raise IngestError(f"Table {printable(uri)}: {_some(nulls)} have no vector in {name!r} (null).")
    lengths = np.asarray(pa.compute.list_value_length(chunked).to_numpy(zero_copy_only=False))
    if len(lengths) and (lengths != lengths[0]).any():
        odd = int(np.flatnonzero(lengths != lengths[0])[0])
        raise IngestError(
            f"Table {printable(uri)}: vectors of mixed dimension in {name!r}: row {ids[0]!r} has {lengths[0]}, row "
            f"{ids[odd]!r} has {lengths[odd]}. Every vector of a collection has the same dimension."
        )
    if not len(lengths):
        return np.zeros((0, 0), dtype=np.float32)
    flat = chunked.flatten().to_numpy(zero_copy_only=False)
    try:
        matrix = np.asarray(flat, dtype=np.float32).reshape(len(ids), int(lengths[0]))
    except (TypeError, ValueError) as exc:
        raise IngestError(f"Table {printable(uri)}: column {name!r} holds lists that are not numbers "
                          f"({exc}).") from None
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        raise IngestError(f"Table {printable(uri)}: {_some([ids[i] for i in np.flatnonzero(bad)])} have NaN or "
                          f"infinite values in their vector ({name!r}). Fix those vectors and ingest again.")
    if (np.linalg.norm(matrix, axis=1) == 0).any():
        zero = [ids[i] for i in np.flatnonzero(np.linalg.norm(matrix, axis=1) == 0)]
        raise IngestError(f"Table {printable(uri)}: {_some(zero)} have an all-zero vector, which has no direction "
                          "for cosine similarity.")
    return matrix


def _row_digest(text: str, vector: np.ndarray | None, metadata: dict[str, Any]) -> str:
    digest = hashlib.sha256(text.encode("utf-8", errors="surrogatepass"))
    digest.update(b"\x00")
    if vector is not None:
        digest.update(vector.tobytes())
    if metadata:
        # repr of the sorted items: the values are JSON types, whose repr is stable; cheaper than json.dumps per row.
        digest.update(b"\x00" + repr(sorted(metadata.items())).encode("utf-8", errors="surrogatepass"))
    return digest.hexdigest()


def _jsonable(value: Any) -> Any:
    """A metadata value as the payload stores it: numbers, text, booleans and lists stay; dates become ISO text."""
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value


def _some(ids: list[str], noun: str = "rows") -> str:
    shown = ", ".join(repr(row_id) for row_id in ids[:SHOWN])
    more = f" and {len(ids) - SHOWN} more" if len(ids) > SHOWN else ""
    return f"{noun} {shown}{more}" if noun == "ids" else f"{len(ids)} rows ({shown}{more})"
