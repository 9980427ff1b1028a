"""The served index over HTTP: upsert, get and delete points by id, behind the server's API keys."""

from types import SimpleNamespace

import pytest
from starlette.testclient import TestClient

from pipeline.serving.http import create_app
from pipeline.serving.keys import add_key
from pipeline.serving.served import ModelInfo
from pipeline.serving.settings import ServingSettings
from pipeline.store.edge import EdgeStore
from pipeline.store.points import PointRecord, upsert_points


class IndexOnlyModel:
    """What the front doors need of a served model, with a real index and no program."""

    def __init__(self, store):
        self.info = ModelInfo(uri="models:/m/1", name="m", version="1", alias=None)
        self.python_model = SimpleNamespace(store=store, settings=SimpleNamespace(collection="notes", embedder="mine",
                                                                                  embedder_dtype="auto"))
        self.streams, self.load_seconds, self.loaded_at = False, 0.0, 0.0

    def index_size(self):
        return self.python_model.store.count("notes")


@pytest.fixture
def client(tmp_path):
    with EdgeStore(tmp_path / "store") as store:
        upsert_points(store, "notes", [PointRecord("n1", "rotate the keys", {"product": "gateway"}, [1.0, 0.0])],
                      embedder_name="mine")
        key = add_key(tmp_path / "keys.json", "ops")
        settings = ServingSettings(api_keys_file=tmp_path / "keys.json", usage_log=tmp_path / "usage.jsonl")
        with TestClient(create_app(IndexOnlyModel(store), settings)) as test_client:
            yield test_client, {"Authorization": f"Bearer {key}"}


def test_points_are_upserted_read_and_deleted_by_id(client):
    http, auth = client
    written = http.post("/v1/index/points", headers=auth, json={"points": [{"id": "n2", "text": "restart the broker",
                                                                           "vector": [0.0, 1.0]}]})
    assert written.status_code == 200 and written.json()["upserted"] == 1
    got = http.post("/v1/index/points/get", headers=auth, json={"ids": ["n1", "n2", "n9"]}).json()
    assert [p["text"] for p in got["points"]] == ["rotate the keys", "restart the broker"] and got["missing"] == ["n9"]
    assert got["points"][0]["metadata"] == {"product": "gateway"}
    deleted = http.post("/v1/index/points/delete", headers=auth, json={"ids": ["n1"]}).json()
    assert deleted == {"deleted": ["n1"], "missing": []}


def test_a_vector_of_the_wrong_dimension_is_a_400_naming_both_and_nothing_is_written(client):
    http, auth = client
    body = {"points": [{"id": "n3", "text": "x", "vector": [1.0]}]}
    response = http.post("/v1/index/points", headers=auth, json=body)
    assert response.status_code == 400 and "2-dimensional" in response.json()["error"]["message"]
    assert http.post("/v1/index/points/get", headers=auth, json={"ids": ["n3"]}).json()["missing"] == ["n3"]


def test_the_index_doors_need_a_key(client):
    http, _ = client
    assert http.post("/v1/index/points/get", json={"ids": ["n1"]}).status_code == 401
