"""Direct access: upsert, get and delete points by the user's ids, on both backends; bad records change nothing."""

import numpy as np
import pytest
from qdrant_client import QdrantClient

from pipeline.errors import StoreError
from pipeline.store.edge import EdgeStore
from pipeline.store.points import PointRecord, PointRecordError, delete_points, get_points, upsert_points
from pipeline.store.qdrant import QdrantStore
from pipeline.store.record import EmbedderMismatchError, read_record

pytestmark = pytest.mark.filterwarnings("ignore:.*(local Qdrant|Local mode).*:UserWarning")


@pytest.fixture(params=["edge", "qdrant"])
def store(request, tmp_path):
    opened = EdgeStore(tmp_path / "store") if request.param == "edge" else QdrantStore(client=QdrantClient(":memory:"))
    yield opened
    opened.close()


def notes():
    return [PointRecord("n1", "rotate the gateway keys", {"product": "gateway", "version": 4}, [1.0, 0.0, 0.0]),
            PointRecord("n2", "restart the broker", {"product": "broker", "version": 2}, [0.0, 1.0, 0.0])]


def test_upsert_get_and_delete_by_id_with_payload(store):
    assert upsert_points(store, "notes", notes(), embedder_name="mine") == 2
    got = get_points(store, "notes", ["n1", "missing"])
    assert list(got) == ["n1"]
    assert got["n1"]["text"] == "rotate the gateway keys"
    assert got["n1"]["metadata"] == {"product": "gateway", "version": 4}
    assert got["n1"]["source"] == "notes#n1"
    hit = store.search("notes", dense=np.array([0.0, 1.0, 0.0], dtype=np.float32), limit=1)[0]
    assert hit.chunk.text == "restart the broker"
    upsert_points(store, "notes", [PointRecord("n1", "rotate keys, edited", {}, [1.0, 0.0, 0.0])], embedder_name="mine")
    assert get_points(store, "notes", ["n1"])["n1"]["text"] == "rotate keys, edited"
    assert store.count("notes") == 2
    assert delete_points(store, "notes", ["n2", "nope"]) == ["n2"]
    assert store.count("notes") == 1 and get_points(store, "notes", ["n2"]) == {}


def test_an_upsert_whose_vector_has_the_wrong_dimension_names_both_and_writes_nothing(store):
    upsert_points(store, "notes", notes(), embedder_name="mine")
    bad = [PointRecord("n3", "new", {}, [1.0, 0.0, 0.0]), PointRecord("n4", "bad", {}, [1.0, 0.0])]
    with pytest.raises(StoreError, match="holds 3-dimensional dense vectors, but 2-dimensional"):
        upsert_points(store, "notes", bad, embedder_name="mine")
    assert store.count("notes") == 2 and get_points(store, "notes", ["n3"]) == {}


def test_records_without_vectors_are_embedded_with_the_recorded_embedder(store, hashing_embedder):
    upsert_points(store, "notes", [PointRecord("a", "alpha text")], embedder=hashing_embedder, embedder_name="hash")
    assert read_record(store, "notes").embedder == "hash" and read_record(store, "notes").dim == hashing_embedder.dim
    with pytest.raises(EmbedderMismatchError, match="indexed with the embedder 'hash'"):
        upsert_points(store, "notes", [PointRecord("b", "beta")], embedder=hashing_embedder, embedder_name="other")
    with pytest.raises(PointRecordError, match="no embedder was given"):
        upsert_points(store, "notes", [PointRecord("b", "beta")])


@pytest.mark.parametrize("data, message", [
    ({"text": "x"}, "needs an id"),
    ({"id": "a", "text": "x", "vector": [1.0, float("nan")]}, "NaN"),
    ({"id": "a", "text": "x", "colour": "red"}, "unknown fields"),
    ({"id": "a", "text": 3}, "text must be a string"),
])
def test_malformed_records_are_refused_with_the_field_named(data, message):
    with pytest.raises(PointRecordError, match=message):
        PointRecord.from_mapping(data, "line 1")
