"""Bad tables: each is a clear IngestError before anything is written, and what was indexed stays as it was."""

import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import IngestError
from pipeline.ingest.table import TableColumns
from pipeline.ingest.table_sync import TableIngestor

COLUMNS = TableColumns(id="id", text="text", vector="embedding")


@pytest.fixture
def indexed(tmp_path, ingestor, store):
    """A collection holding one good table; returns (write a bad table and sync it, the points before)."""
    path = tmp_path / "vectors.parquet"
    pq.write_table(pa.table({"id": [1, 2], "text": ["alpha", "beta"], "embedding": [[1.0, 0.0], [0.0, 1.0]]}), path)
    TableIngestor(ingestor, embedder_name="e").sync(str(path), COLUMNS)
    before = sorted(store.scan("docs", ["text", "source"]))

    def sync_bad(data: pa.Table, columns: TableColumns = COLUMNS):
        pq.write_table(data, path)
        return TableIngestor(ingestor, embedder_name="e").sync(str(path), columns)

    yield sync_bad
    assert sorted(store.scan("docs", ["text", "source"])) == before


def test_missing_columns_are_named_with_the_columns_the_table_has(indexed):
    with pytest.raises(IngestError, match=r"no column 'text', 'embedding'; its columns are: id, body, vec"):
        indexed(pa.table({"id": [1], "body": ["x"], "vec": [[1.0, 0.0]]}))


def test_null_ids_are_refused(indexed):
    with pytest.raises(IngestError, match=r"1 rows have a null id in 'id' \(row numbers 1\)"):
        indexed(pa.table({"id": [1, None], "text": ["a", "b"], "embedding": [[1.0, 0.0], [0.0, 1.0]]}))


def test_duplicate_ids_in_one_version_are_refused(indexed):
    with pytest.raises(IngestError, match=r"ids repeat in 'id' \(ids '7'\)"):
        indexed(pa.table({"id": [7, 7, 8], "text": ["a", "b", "c"], "embedding": [[1.0, 0.0]] * 3}))


def test_vectors_of_mixed_dimension_are_refused_naming_the_rows(indexed):
    with pytest.raises(IngestError, match=r"mixed dimension.*row '1' has 2, row '2' has 3"):
        indexed(pa.table({"id": [1, 2], "text": ["a", "b"], "embedding": [[1.0, 0.0], [0.0, 1.0, 0.0]]}))


def test_nan_in_a_vector_is_refused_naming_the_row(indexed):
    with pytest.raises(IngestError, match=r"1 rows \('2'\) have NaN"):
        indexed(pa.table({"id": [1, 2], "text": ["a", "b"], "embedding": [[1.0, 0.0], [math.nan, 1.0]]}))


def test_a_folder_that_is_not_a_delta_table_is_refused(tmp_path, ingestor, store):
    folder = tmp_path / "not_delta"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    with pytest.raises(IngestError, match="is a folder but not a Delta table"):
        TableIngestor(ingestor).sync(str(folder), TableColumns(id="id", text="text"))
    assert not store.has_collection("docs")


def test_a_file_that_is_not_parquet_is_refused(tmp_path, ingestor):
    path = tmp_path / "table.parquet"
    path.write_text("id,text\n1,a\n")
    with pytest.raises(IngestError, match="is not a Parquet file"):
        TableIngestor(ingestor).sync(str(path), TableColumns(id="id", text="text"))
