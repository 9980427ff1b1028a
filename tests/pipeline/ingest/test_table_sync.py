"""Tables as documents: Parquet and Delta rows indexed, synced by version, deleted ids removed, a killed run finished
by the next, and the table's own vectors stored as they are."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from pipeline.config import Settings
from pipeline.errors import IngestError
from pipeline.ingest.table import TableColumns
from pipeline.ingest.table_sync import TableIngestor
from pipeline.retrieval.retriever import HybridRetriever
from pipeline.store.base import STAGED_FIELD
from pipeline.store.record import EmbedderMismatchError, read_record
from pipeline.store.where import where_filter
from pipeline.wiring import check_query_embedder

COLUMNS = TableColumns(id="id", text="text", metadata=("product",))


def table(ids, texts, products=None):
    return pa.table({"id": ids, "text": texts, "product": products or ["gateway"] * len(ids)})


def rows_of(store, collection="docs"):
    """{row id: text} of the searchable points, and the number of staged ones."""
    found, staged = {}, 0
    for _, payload in store.scan(collection, ["source", "text", STAGED_FIELD]):
        if payload.get(STAGED_FIELD):
            staged += 1
            continue
        found[payload["source"].rpartition("#")[2]] = payload["text"]
    return found, staged


def test_parquet_rows_are_indexed_cited_by_table_and_id_and_a_second_run_writes_nothing(tmp_path, ingestor, store):
    path = tmp_path / "products.parquet"
    pq.write_table(table([1, 2, 3], ["rotate the gateway keys", "restart the broker", "tune the cache"]), path)
    report = TableIngestor(ingestor).sync(str(path), COLUMNS)
    assert len(report.indexed) == 3
    assert rows_of(store)[0] == {"1": "rotate the gateway keys", "2": "restart the broker", "3": "tune the cache"}
    hits = HybridRetriever(store, "docs", ingestor.embedder, mode="bm25").retrieve("broker")
    assert hits[0].chunk.source == f"{path.resolve()}#2"
    before = sorted(store.scan("docs", ["text"]))
    again = TableIngestor(ingestor).sync(str(path), COLUMNS)
    assert (again.indexed, again.unchanged, again.chunks_written, again.chunks_deleted) == ([], [], 0, 0)
    assert again.manifest_id == report.manifest_id
    assert sorted(store.scan("docs", ["text"])) == before


def test_delta_versions_apply_only_changed_rows_and_remove_deleted_ids(tmp_path, ingestor, store):
    path = str(tmp_path / "tickets")
    write_deltalake(path, table(["a", "b", "c"], ["one", "two", "three"]))
    TableIngestor(ingestor).sync(path, COLUMNS)
    DeltaTable(path).delete("id = 'c'")
    write_deltalake(path, table(["b", "d"], ["two, edited", "four"]), mode="overwrite")
    write_deltalake(path, table(["a"], ["one"]), mode="append")
    report = TableIngestor(ingestor).sync(path, COLUMNS)
    assert sorted(report.indexed) == [f"{tmp_path.resolve()}/tickets#b", f"{tmp_path.resolve()}/tickets#d"]
    assert report.unchanged == [f"{tmp_path.resolve()}/tickets#a"]
    assert sorted(report.deleted) == [f"{tmp_path.resolve()}/tickets#c"]
    assert rows_of(store) == ({"a": "one", "b": "two, edited", "d": "four"}, 0)


def test_delta_change_feed_reads_only_the_changed_rows(tmp_path, ingestor, store):
    path = str(tmp_path / "tickets")
    write_deltalake(path, table(["a", "b", "c"], ["one", "two", "three"]),
                    configuration={"delta.enableChangeDataFeed": "true"})
    TableIngestor(ingestor).sync(path, COLUMNS)
    delta = DeltaTable(path)
    delta.update(updates={"text": "'two, edited'"}, predicate="id = 'b'")
    delta.delete("id = 'c'")
    write_deltalake(path, table(["d"], ["four"]), mode="append")
    report = TableIngestor(ingestor).sync(path, COLUMNS)
    manifest = read_record(store, "docs").manifest
    assert manifest["sources"][0]["read"] == "change feed" and manifest["sources"][0]["rows"] == 2
    assert report.unchanged == [] and len(report.indexed) == 2 and len(report.deleted) == 1
    assert rows_of(store) == ({"a": "one", "b": "two, edited", "d": "four"}, 0)


class FailingAfter:
    """A store whose upserts fail once `limit` points have been written: a run killed half-way."""

    def __init__(self, store, limit):
        self.store, self.limit, self.written = store, limit, 0

    def upsert(self, name, chunks, *args, **kwargs):
        if self.written + len(chunks) > self.limit and chunks[0].text:
            raise KeyboardInterrupt("killed")
        self.written += len(chunks)
        return self.store.upsert(name, chunks, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.store, name)


class KilledBeforeSwitch(FailingAfter):
    """A store killed after writing the first staged batch, before switching it on."""

    def __init__(self, store):
        super().__init__(store, limit=1 << 30)

    def set_payload(self, *args, **kwargs):
        raise KeyboardInterrupt("killed")


def test_a_run_killed_half_way_ends_with_exactly_the_table_rows_on_rerun(tmp_path, ingestor, store):
    path = str(tmp_path / "tickets")
    write_deltalake(path, table([f"r{i}" for i in range(10)], [f"text {i}" for i in range(10)]))
    TableIngestor(ingestor).sync(path, COLUMNS)
    write_deltalake(path, table([f"r{i}" for i in range(3, 14)], [f"new text {i}" for i in range(3, 14)]),
                    mode="overwrite")
    ingestor.store = FailingAfter(store, 6)
    with pytest.raises(KeyboardInterrupt):
        TableIngestor(ingestor).sync(path, COLUMNS)
    visible, staged = rows_of(store)
    # Every row shows one whole version, old or new, and the rows not reached yet are still there.
    assert staged > 0 and {f"r{i}" for i in range(10)} <= set(visible)
    assert all(text in (f"text {row[1:]}", f"new text {row[1:]}") for row, text in visible.items())
    ingestor.store = store
    TableIngestor(ingestor).sync(path, COLUMNS)
    assert rows_of(store) == ({f"r{i}": f"new text {i}" for i in range(3, 14)}, 0)


def test_own_vectors_are_stored_as_given_and_bm25_still_built(tmp_path, ingestor, store):
    vectors = np.eye(4, dtype=np.float32)[[0, 1, 2]]
    path = tmp_path / "vectors.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3], "text": ["alpha", "beta", "gamma"], "embedding": vectors.tolist()}), path)
    columns = TableColumns(id="id", text="text", vector="embedding")
    TableIngestor(ingestor, embedder_name="my-embedder").sync(str(path), columns)
    assert read_record(store, "docs").embedder == "my-embedder" and read_record(store, "docs").dim == 4
    dense = store.search("docs", dense=np.array([0, 1, 0, 0], dtype=np.float32), limit=1)
    assert dense[0].chunk.source.endswith("#2")
    sparse = HybridRetriever(store, "docs", ingestor.embedder, mode="bm25").retrieve("gamma")
    assert sparse[0].chunk.source.endswith("#3")


def test_own_vectors_of_another_dimension_than_the_collection_are_refused_naming_both(tmp_path, ingestor, store):
    path = tmp_path / "vectors.parquet"
    pq.write_table(pa.table({"id": [1], "text": ["alpha"], "embedding": [[1.0, 0.0, 0.0, 0.0]]}), path)
    columns = TableColumns(id="id", text="text", vector="embedding")
    TableIngestor(ingestor, embedder_name="e").sync(str(path), columns)
    pq.write_table(pa.table({"id": [1], "text": ["alpha"], "embedding": [[1.0, 0.0, 0.0]]}), path)
    with pytest.raises(Exception, match="4-dimensional.*3-dimensional"):
        TableIngestor(ingestor, embedder_name="e").sync(str(path), columns)
    assert rows_of(store) == ({"1": "alpha"}, 0)


def test_own_vectors_need_the_declared_embedder(tmp_path, ingestor):
    path = tmp_path / "vectors.parquet"
    pq.write_table(pa.table({"id": [1], "text": ["alpha"], "embedding": [[1.0, 0.0]]}), path)
    with pytest.raises(IngestError, match="--embedder NAME"):
        TableIngestor(ingestor).sync(str(path), TableColumns(id="id", text="text", vector="embedding"))


def test_metadata_columns_are_stored_and_filter_searches(tmp_path, ingestor, store):
    path = tmp_path / "products.parquet"
    data = pa.table({"id": [1, 2, 3], "text": ["gateway keys", "gateway limits", "broker keys"],
                     "product": ["gateway", "gateway", "broker"], "version": [3, 5, 5]})
    pq.write_table(data, path)
    TableIngestor(ingestor).sync(str(path), TableColumns(id="id", text="text", metadata=("product", "version")))
    where = where_filter('product = "gateway" AND version >= 4')
    retriever = HybridRetriever(store, "docs", ingestor.embedder, filter=where)
    assert [hit.chunk.source.rpartition("#")[2] for hit in retriever.retrieve("keys limits")] == ["2"]


def test_a_query_with_another_embedder_than_the_collection_records_is_refused(tmp_path, ingestor, store):
    path = tmp_path / "vectors.parquet"
    pq.write_table(pa.table({"id": [1], "text": ["alpha"], "embedding": [[1.0, 0.0]]}), path)
    TableIngestor(ingestor, embedder_name="my-embedder").sync(str(path), TableColumns("id", "text", "embedding"))
    settings = Settings(collection="docs", embedder="all-MiniLM-L6-v2")
    with pytest.raises(EmbedderMismatchError, match="indexed with the embedder 'my-embedder'.*'all-MiniLM-L6-v2'"):
        check_query_embedder(settings, store)
    check_query_embedder(Settings(collection="docs", embedder="my-embedder"), store)


def test_a_change_feed_sync_killed_half_way_is_finished_by_the_next(tmp_path, ingestor, store):
    path = str(tmp_path / "tickets")
    write_deltalake(path, table([f"r{i}" for i in range(10)], [f"text {i}" for i in range(10)]),
                    configuration={"delta.enableChangeDataFeed": "true"})
    TableIngestor(ingestor).sync(path, COLUMNS)
    delta = DeltaTable(path)
    delta.update(updates={"text": "concat('new ', text)"}, predicate="id < 'r6'")
    delta.delete("id = 'r9'")
    ingestor.store = KilledBeforeSwitch(store)
    with pytest.raises(KeyboardInterrupt):
        TableIngestor(ingestor).sync(path, COLUMNS)
    assert rows_of(store) == ({f"r{i}": f"text {i}" for i in range(10)}, 4)  # old rows whole, new ones staged
    ingestor.store = store
    report = TableIngestor(ingestor).sync(path, COLUMNS)
    assert read_record(store, "docs").manifest["sources"][0]["read"] == "change feed"
    expected = {f"r{i}": (f"new text {i}" if i < 6 else f"text {i}") for i in range(9)}
    assert rows_of(store) == (expected, 0) and report.deleted == [f"{Path(path).resolve()}#r9"]
