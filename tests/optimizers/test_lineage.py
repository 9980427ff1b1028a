"""Lineage: an ingest's manifest, logged to the compile run and tagged on the model version, is walked back from the
model URI and from a served trace to the documents and chunks it cited."""

import mlflow
import pytest
from mlflow import MlflowClient

from optimizers.lineage import (
    EVAL_SET_TAG,
    MANIFESTS_TAG,
    log_index_manifests,
    model_lineage,
    tag_model_lineage,
    trace_lineage,
)
from pipeline.ingest.chunking import make_chunker
from pipeline.ingest.sync import Ingestor
from pipeline.store.factory import open_store
from pipeline.store.record import read_record


@pytest.fixture
def ingestor(tmp_path, hashing_embedder):
    with open_store(path=tmp_path / "store") as store:
        yield Ingestor(store, "docs", hashing_embedder, make_chunker("structure", size=80, overlap=10))


@pytest.fixture
def indexed(tmp_path, ingestor):
    store = ingestor.store
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "keys.md").write_text("# Keys\n\nRotate the API keys every 90 days.\n")
    (docs / "broker.md").write_text("# Broker\n\nRestart the broker after an upgrade.\n")
    report = ingestor.sync(docs)
    return report, read_record(store, "docs")


def test_every_ingest_records_a_manifest_and_an_unchanged_sync_adds_none(indexed, ingestor, tmp_path):
    report, record = indexed
    manifest = record.manifest
    assert manifest["id"] == report.manifest_id and manifest["kind"] == "folder"
    assert [s["source"] for s in manifest["sources"]] == ["broker.md", "keys.md"]
    assert all(len(s["sha256"]) == 64 for s in manifest["sources"])
    assert manifest["embedder"] == "unnamed" and manifest["dim"] == 64 and manifest["counts"]["points"] >= 2
    assert ingestor.sync(tmp_path / "docs").manifest_id == report.manifest_id
    (tmp_path / "docs" / "keys.md").write_text("# Keys\n\nRotate the API keys every 30 days.\n")
    changed = ingestor.sync(tmp_path / "docs")
    assert changed.manifest_id != report.manifest_id
    assert [m["id"] for m in read_record(ingestor.store, "docs").current_manifests()] == [changed.manifest_id]


def register(run_id, name="lineage-model"):
    client = MlflowClient()
    client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id).version
    client.set_registered_model_alias(name, "champion", version)
    return f"models:/{name}/{version}"


def test_the_model_uri_and_a_served_trace_walk_back_to_the_documents(indexed):
    _, record = indexed
    manifests = record.current_manifests()
    with mlflow.start_run(run_name="rag-bootstrap-light") as run:
        mlflow.log_param("eval_set_hash", "abc123")
    log_index_manifests(run.info.run_id, manifests)
    uri = register(run.info.run_id)
    tag_model_lineage(uri, run.info.run_id, manifests)
    version = MlflowClient().get_model_version("lineage-model", uri.rsplit("/", 1)[1])
    assert version.tags[MANIFESTS_TAG] == manifests[0]["id"] and version.tags[EVAL_SET_TAG] == "abc123"
    inputs = MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    assert [i.dataset.digest for i in inputs] == [manifests[0]["id"][:36]]

    lineage = model_lineage("models:/lineage-model@champion")
    text = "\n".join(lineage.lines())
    assert lineage.aliases == ["champion"] and lineage.eval_set_hash == "abc123"
    for fragment in ("documents:", "keys.md  sha256", "index version:", manifests[0]["id"][:16], "compile run:",
                     run.info.run_id, "model version:", uri, "alias:\n  champion"):
        assert fragment in text
    assert text.index("documents:") < text.index("index version:") < text.index("compile run:") < text.index("alias:")

    keys_sha = next(s["sha256"] for s in manifests[0]["sources"] if s["source"] == "keys.md")
    mlflow.tracing.enable()
    try:
        with mlflow.start_span("tessera.rag.request"):
            mlflow.update_current_trace(tags={"tessera.model_name": "lineage-model", "tessera.model_version": "1"})
            with mlflow.start_span("rag") as root:
                with mlflow.start_span("retrieve") as retrieve:
                    retrieve.set_outputs([{"id": "c1", "source": "keys.md", "score": 1.0},
                                          {"id": "c2", "source": "broker.md", "score": 0.5}])
                root.set_outputs({"answer": "Every 90 days.", "citations": ["c1"]})
        trace_id = mlflow.get_last_active_trace_id()
    finally:
        mlflow.tracing.disable()
    walked = trace_lineage(trace_id)
    assert walked.cited == [{"id": "c1", "source": "keys.md", "sha256": keys_sha}]
    assert walked.model.version == "1" and "models:/lineage-model/1" in "\n".join(walked.lines())
