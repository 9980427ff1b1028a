"""Recording a registered model's hash manifest, and loading a registered model only if it still matches it.

A model artifact is code: `mlflow.pyfunc.load_model` runs the model's `model.py`, and unpickles a `python_model`
if its MLmodel file names one. So at registration every file of the model is hashed; the manifest goes into the
run's artifacts as `model_manifest.json` and its sha256 into the model version's tag `tessera.manifest_sha256`.
`load_verified_model` downloads a private copy, refuses any file that differs from the manifest, refuses a pickled
model, and loads the copy with MLflow's pickle deserialization off. The registry is the root of trust: whoever can
set its tags can vouch for any model, so load models only from a registry you trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import UntrustedModelError
from pipeline.serving.manifest import check_tree, hash_tree, manifest_text, parse_manifest

MANIFEST_TAG = "tessera.manifest_sha256"
MANIFEST_ARTIFACT = "model_manifest.json"
# The loader MLflow writes for models-from-code; a pickled python_model names mlflow.pyfunc.model instead.
CODE_MODEL_LOADER = "mlflow.pyfunc.loaders.code_model"
PICKLE_SWITCH = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"

_REGISTERED_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<version>[0-9]+)|@(?P<alias>[A-Za-z0-9_\-]+))")


def record_manifest(name: str, version: str) -> str:
    """Hash every file of registered model `name` version `version` as the store holds it, log the manifest to
    the model's run and tag the version with the manifest's sha256; returns that sha256."""
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    client = MlflowClient()
    model_version = client.get_model_version(name, version)
    if not model_version.run_id:
        raise UntrustedModelError(f"models:/{name}/{version} was registered without a run, so there is nowhere to keep its manifest.")
    with tempfile.TemporaryDirectory() as scratch:
        local = download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=scratch)
        text = manifest_text(hash_tree(Path(local)))
    client.log_text(model_version.run_id, text, MANIFEST_ARTIFACT)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    client.set_model_version_tag(name, version, MANIFEST_TAG, digest)
    return digest


def load_verified_model(uri: str, dst: Path | None = None) -> Any:
    """Load registered model `uri` (`models:/<name>/<version>` or `models:/<name>@<alias>`) as an MLflow pyfunc
    model, after checking its files against the manifest recorded at registration.

    The files are downloaded to `dst` (default: a new temporary folder), which must outlive the model: it holds
    the index snapshot the model searches.
    """
    import mlflow

    model_dir = download_verified_model(uri, dst)
    with _pickle_deserialization_off():
        return mlflow.pyfunc.load_model(str(model_dir))


def download_verified_model(uri: str, dst: Path | None = None) -> Path:
    """Download registered model `uri` to `dst` (default: a new temporary folder) and return the model's folder,
    once every file matches the registered manifest and the model is logged from code, not pickled."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        name, version = _resolve(client, uri)
        model_version = client.get_model_version(name, version)
    except MlflowException as exc:
        raise UntrustedModelError(f"Cannot find {uri} in the model registry at {mlflow.get_registry_uri()}: {exc.message}") from exc
    digest, run_id = model_version.tags.get(MANIFEST_TAG), model_version.run_id
    if not digest or not run_id:
        raise UntrustedModelError(
            f"{uri} has no Tessera manifest (tag {MANIFEST_TAG}), so its files cannot be checked. "
            "Register models with scripts/compile.py, which records one."
        )
    folder = Path(dst) if dst is not None else Path(tempfile.mkdtemp(prefix="tessera-model-"))
    try:
        manifest_file = download_artifacts(run_id=run_id, artifact_path=MANIFEST_ARTIFACT, dst_path=str(folder))
        raw = Path(manifest_file).read_bytes()
        model_dir = Path(download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(folder / "model")))
    except (MlflowException, OSError) as exc:
        raise UntrustedModelError(f"Cannot download {uri} or its manifest {MANIFEST_ARTIFACT} from run {run_id}: {exc}") from exc
    if hashlib.sha256(raw).hexdigest() != digest:
        raise UntrustedModelError(
            f"The manifest {MANIFEST_ARTIFACT} of {uri} (run {run_id}) was changed after registration: its sha256 "
            f"differs from the registry's tag {MANIFEST_TAG}. Register the model again from a trusted compile."
        )
    check_tree(model_dir, parse_manifest(raw.decode("utf-8")), model=uri)
    _check_code_model(model_dir, uri)
    return model_dir


def _resolve(client, uri: str) -> tuple[str, str]:
    match = _REGISTERED_URI.fullmatch(uri)
    if match is None:
        raise UntrustedModelError(
            f"{uri!r} is not a registered model URI. Tessera loads only registered models, whose manifest is in the "
            "registry: models:/<name>/<version> or models:/<name>@<alias>, for example models:/tessera-rag/1."
        )
    name = match["name"]
    if match["alias"]:
        return name, client.get_model_version_by_alias(name, match["alias"]).version
    return name, match["version"]


def _check_code_model(model_dir: Path, uri: str) -> None:
    """Refuse an MLmodel whose python_function flavor unpickles a python_model instead of running logged code."""
    try:
        flavors = yaml.safe_load((model_dir / "MLmodel").read_text(encoding="utf-8")).get("flavors") or {}
    except (OSError, yaml.YAMLError, AttributeError) as exc:
        raise UntrustedModelError(f"{uri} has no readable MLmodel file ({exc}).") from exc
    flavor = flavors.get("python_function") or {}
    if flavor.get("loader_module") != CODE_MODEL_LOADER or "model_code_path" not in flavor or "python_model" in flavor:
        loads = flavor.get("python_model") or flavor.get("loader_module") or "no python_function flavor"
        raise UntrustedModelError(
            f"{uri} is not a models-from-code pyfunc model: its MLmodel loads {loads!r}. Unpickling a model runs "
            "whatever code the pickle holds, so Tessera loads only models logged from code (pipeline/serving/model.py)."
        )


@contextlib.contextmanager
def _pickle_deserialization_off() -> Iterator[None]:
    """MLflow allows pickle deserialization unless this switch says false; every loader it calls honours it."""
    previous = os.environ.get(PICKLE_SWITCH)
    os.environ[PICKLE_SWITCH] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(PICKLE_SWITCH, None)
        else:
            os.environ[PICKLE_SWITCH] = previous


@contextlib.contextmanager
def tracing_on_while_logging() -> Iterator[None]:
    """Turn MLflow tracing on for the duration of a `log_model` call, and back off after if it was off.

    MLflow 3.17.2 deadlocks in `mlflow.pyfunc.log_model` when tracing is disabled: its nested `@trace_disabled`
    wrappers call through while holding one non-reentrant lock. `log_model` records no trace either way.
    """
    import mlflow
    from mlflow.tracing.provider import is_tracing_enabled

    was_on = is_tracing_enabled()
    mlflow.tracing.enable()
    try:
        yield
    finally:
        if not was_on:
            mlflow.tracing.disable()
