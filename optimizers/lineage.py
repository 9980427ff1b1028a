"""Lineage from documents to served answers: each compile run logs the ingest manifests of the collection it used as
MLflow dataset inputs, the model version it registers carries their ids and the eval-set hash as tags, and served
traces carry the model version; this module writes those links and walks them back.

    documents ─(manifest)─► index version ─(dataset input)─► compile run ─(run id)─► model version ─► alias
    served trace ─(tessera.model_version tag, cited chunk ids)─► model version … and the documents it cited
"""

from __future__ import annotations

import datetime
import json
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError

MANIFESTS_TAG = "tessera.index_manifests"
EVAL_SET_TAG = "tessera.eval_set_hash"
MANIFEST_FOLDER = "index_manifests"
DATASET_CONTEXT = "index"
SHOWN_SOURCES = 20


def log_index_manifests(run_id: str, manifests: Sequence[dict[str, Any]]) -> None:
    """Log each manifest to run `run_id` as a dataset input (context "index", digest = manifest id) and as the
    artifact ``index_manifests/<id>.json``."""
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with mlflow.start_run(run_id=run_id):
        for manifest in manifests:
            # A local path resolves to a LocalArtifactDatasetSource (MLflow registers that class twice and warns
            # that the path fits both): the folder or table the manifest describes.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                source = resolve_dataset_source(manifest["root"])
            dataset = MetaDataset(source, name=f"{manifest['collection']}:"
                                  f"{Path(manifest['root']).name}", digest=manifest["id"][:36])
            mlflow.log_input(dataset, context=DATASET_CONTEXT, tags={"tessera.manifest_id": manifest["id"]})
            mlflow.log_text(json.dumps(manifest, indent=1, sort_keys=True), f"{MANIFEST_FOLDER}/{manifest['id']}.json")


def tag_model_lineage(model_uri: str, run_id: str, manifests: Sequence[dict[str, Any]]) -> None:
    """Tag registered `model_uri` (models:/name/version) with its manifest ids and the eval-set hash of run `run_id`."""
    from mlflow import MlflowClient

    client = MlflowClient()
    name, version = model_uri.removeprefix("models:/").rsplit("/", 1)
    client.set_model_version_tag(name, version, MANIFESTS_TAG, ",".join(m["id"] for m in manifests))
    eval_hash = client.get_run(run_id).data.params.get("eval_set_hash")
    if eval_hash:
        client.set_model_version_tag(name, version, EVAL_SET_TAG, eval_hash)


@dataclass
class ModelLineage:
    """One registered model version and what it was made from."""

    name: str
    version: str
    aliases: list[str]
    run_id: str | None
    run_name: str | None = None
    run_status: str | None = None
    run_started: float | None = None
    eval_set_hash: str | None = None
    manifests: list[dict[str, Any]] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The chain for a terminal: documents → index version → compile run → model version → alias."""
        lines = ["documents:"]
        for manifest in self.manifests:
            for source in manifest.get("sources", [])[:SHOWN_SOURCES]:
                lines.append(f"  {_source_line(source)}")
            hidden = len(manifest.get("sources", [])) - SHOWN_SOURCES
            if hidden > 0:
                lines.append(f"  … and {hidden} more sources of {manifest['root']}")
        if not self.manifests:
            lines.append("  (unknown: the compile run logged no index manifest)")
        lines.append("index version:")
        for m in self.manifests:
            counts = m.get("counts", {})
            lines.append(f"  manifest {m['id'][:16]}  collection {m['collection']!r}, {m['kind']} {m['root']}"
                         f"{' version ' + str(m['version']) if m.get('version') else ''}; embedder {m['embedder']} "
                         f"({m['dim']} dims), chunking {m['chunking'].get('strategy')}; {counts.get('points', '?')} "
                         f"points; ingested {_time(m['created'])}")
        lines.append(f"compile run:\n  {self.run_id} ({self.run_name}, {self.run_status}, started "
                     f"{_time(self.run_started / 1000) if self.run_started else '?'}); eval set {self.eval_set_hash}")
        lines.append(f"model version:\n  models:/{self.name}/{self.version}")
        lines.append(f"alias:\n  {', '.join(self.aliases) if self.aliases else '(none)'}")
        return lines


@dataclass
class TraceLineage:
    """A served answer: its trace, the chunks it cited with their documents, and the model version that answered."""

    trace_id: str
    model: ModelLineage | None
    cited: list[dict[str, Any]]

    def lines(self) -> list[str]:
        lines = [f"trace {self.trace_id}", "cited chunks:"]
        lines += [f"  {c['id']}  {c.get('source', '(source not in the trace)')}"
                  + (f"  sha256 {c['sha256'][:16]}" if c.get("sha256") else "") for c in self.cited]
        if not self.cited:
            lines.append("  (none: the answer cited no passage)")
        if self.model is None:
            lines.append("model version: (unknown: the trace carries no tessera.model_version tag)")
            return lines
        return [*lines, *self.model.lines()]


def model_lineage(uri: str) -> ModelLineage:
    """The lineage of registered model `uri` (models:/name/version or models:/name@alias)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from pipeline.serving.served import describe_uri

    info = describe_uri(uri)
    client = MlflowClient()
    try:
        version = client.get_model_version(info.name, info.version)
    except MlflowException as exc:
        raise ConfigError(f"Cannot find {uri} in the model registry: {exc.message}") from None
    lineage = ModelLineage(info.name, info.version, sorted(version.aliases or []), version.run_id,
                           eval_set_hash=version.tags.get(EVAL_SET_TAG))
    if version.run_id:
        run = client.get_run(version.run_id)
        lineage.run_name, lineage.run_status, lineage.run_started = (run.info.run_name, run.info.status,
                                                                     run.info.start_time)
        lineage.eval_set_hash = lineage.eval_set_hash or run.data.params.get("eval_set_hash")
        ids = [i for i in version.tags.get(MANIFESTS_TAG, "").split(",") if i]
        lineage.manifests = [_manifest(client, version.run_id, manifest_id) for manifest_id in ids]
    return lineage


def trace_lineage(trace_id: str) -> TraceLineage:
    """The chunks a served answer cited (ids from its root span, sources from its retrieval spans) and the lineage
    of the model version its tags name."""
    import mlflow

    trace = mlflow.get_trace(trace_id)
    if trace is None:
        raise ConfigError(f"No trace {trace_id!r} in the tracking store {mlflow.get_tracking_uri()}.")
    tags = trace.info.tags or {}
    sources: dict[str, str] = {}
    cited: list[str] = []
    for span in trace.data.spans:
        outputs = span.outputs
        if isinstance(outputs, list):
            sources.update({o["id"]: o["source"] for o in outputs
                            if isinstance(o, dict) and "id" in o and "source" in o})
        elif isinstance(outputs, dict) and isinstance(outputs.get("citations"), list) and not cited:
            cited = [str(c) for c in outputs["citations"]]
    name, version = tags.get("tessera.model_name"), tags.get("tessera.model_version")
    model = model_lineage(f"models:/{name}/{version}") if name and version else None
    manifests = model.manifests if model else []
    hashes = {s.get("source"): s.get("sha256") for m in manifests for s in m.get("sources", [])}
    chunks = []
    for chunk_id in cited:
        entry: dict[str, Any] = {"id": chunk_id}
        if chunk_id in sources:
            entry["source"] = sources[chunk_id]
            if hashes.get(sources[chunk_id]):
                entry["sha256"] = hashes[sources[chunk_id]]
        chunks.append(entry)
    return TraceLineage(trace_id, model, chunks)


def _manifest(client, run_id: str, manifest_id: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        path = client.download_artifacts(run_id, f"{MANIFEST_FOLDER}/{manifest_id}.json", scratch)
        return json.loads(Path(path).read_text(encoding="utf-8"))


def _source_line(source: dict[str, Any]) -> str:
    if "table" in source:
        return f"table {source['table']} ({source['format']}) version {str(source['version'])[:16]}"
    return f"{source['source']}  sha256 {source['sha256'][:16]}"


def _time(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
