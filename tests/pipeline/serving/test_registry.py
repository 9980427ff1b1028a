import os
import uuid
from pathlib import Path

import mlflow
import mlflow.pyfunc
import pandas as pd
import pytest

from pipeline.serving.manifest import UntrustedModelError
from pipeline.serving.registry import (
    MANIFEST_ARTIFACT,
    download_verified_model,
    load_verified_model,
    record_manifest,
    tracing_on_while_logging,
)

# A models-from-code model as small as Tessera's: it reads one artifact and reports what it saw while loading.
ECHO_MODEL = """
import os

import mlflow.models
import mlflow.pyfunc
import pandas as pd


class Echo(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.greeting = open(context.artifacts["greeting"]).read()
        self.pickle_switch = os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "unset")

    def predict(self, context, model_input: pd.DataFrame, params=None) -> list[str]:
        return [f"{self.greeting} {question} (pickle switch: {self.pickle_switch})" for question in model_input["question"]]


mlflow.models.set_model(Echo())
"""


class PickledEcho(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: pd.DataFrame, params=None) -> list[str]:
        return list(model_input["question"])


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, mlflow_in_a_temporary_store):
    """An experiment in the test store whose artifacts live in a temporary folder, and the files a model logs."""
    root = tmp_path_factory.mktemp("registry")
    (root / "echo_model.py").write_text(ECHO_MODEL)
    (root / "greeting.txt").write_text("hello")
    experiment_id = mlflow.create_experiment(f"serving-{uuid.uuid4().hex[:8]}", artifact_location=(root / "artifacts").as_uri())
    return experiment_id, root


def register(experiment, python_model=None, *, manifest: bool = True) -> tuple[str, Path]:
    """Log and register a fresh model; returns its URI and the folder where the artifact store keeps its files."""
    experiment_id, root = experiment
    name = f"tiny-{uuid.uuid4().hex[:8]}"
    with mlflow.start_run(experiment_id=experiment_id), tracing_on_while_logging():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=python_model or str(root / "echo_model.py"),
            artifacts={"greeting": str(root / "greeting.txt")},
            pip_requirements=["mlflow"],
            registered_model_name=name,
        )
    if manifest:
        record_manifest(name, "1")
    stored = Path(mlflow.get_logged_model(info.model_id).artifact_location.removeprefix("file://"))
    return f"models:/{name}/1", stored


def test_a_registered_model_loads_with_pickle_deserialization_off(experiment, tmp_path):
    uri, _ = register(experiment)
    before = os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION")

    model = load_verified_model(uri, tmp_path / "copy")

    assert model.predict(pd.DataFrame({"question": ["world"]})) == ["hello world (pickle switch: false)"]
    assert os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION") == before


def test_a_model_is_found_by_alias(experiment, tmp_path):
    uri, _ = register(experiment)
    name = uri.split("/")[1]
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", "1")

    model = load_verified_model(f"models:/{name}@champion", tmp_path / "copy")

    assert model.predict(pd.DataFrame({"question": ["there"]}))[0].startswith("hello there")


def point_mlmodel_at_a_pickle(stored: Path) -> None:
    mlmodel = stored / "MLmodel"
    text = mlmodel.read_text().replace("loader_module: mlflow.pyfunc.loaders.code_model", "loader_module: mlflow.pyfunc.model")
    mlmodel.write_text(text.replace("python_function:\n", "python_function:\n    python_model: python_model.pkl\n"))
    (stored / "python_model.pkl").write_bytes(b"\x80\x04.")


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda stored: (stored / "artifacts" / "greeting.txt").write_text("hello, attacker"), "changed: artifacts/greeting.txt"),
        (lambda stored: (stored / "echo_model.py").write_text("import os\nos.system('id')\n"), "changed: echo_model.py"),
        (point_mlmodel_at_a_pickle, "changed: MLmodel; added: python_model.pkl"),
        (lambda stored: (stored / "artifacts" / "greeting.txt").unlink(), "missing: artifacts/greeting.txt"),
    ],
    ids=["artifact", "model-code", "mlmodel-to-pickle", "removed-file"],
)
def test_a_model_edited_in_the_artifact_store_is_refused_naming_the_file(experiment, tmp_path, edit, named):
    uri, stored = register(experiment)
    edit(stored)

    with pytest.raises(UntrustedModelError, match=f"{uri} does not match the manifest.*{named}"):
        load_verified_model(uri, tmp_path / "copy")


def test_a_pickled_python_model_is_refused_even_when_its_manifest_matches(experiment, tmp_path):
    uri, _ = register(experiment, PickledEcho())

    with pytest.raises(UntrustedModelError, match="not a models-from-code pyfunc model.*python_model.pkl"):
        load_verified_model(uri, tmp_path / "copy")


def test_a_manifest_edited_to_match_edited_files_is_refused(experiment, tmp_path):
    from pipeline.serving.manifest import hash_tree, manifest_text

    uri, stored = register(experiment)
    (stored / "artifacts" / "greeting.txt").write_text("hello, attacker")
    run_id = mlflow.MlflowClient().get_model_version(uri.split("/")[1], "1").run_id
    manifest = Path(mlflow.get_run(run_id).info.artifact_uri.removeprefix("file://")) / MANIFEST_ARTIFACT
    manifest.write_text(manifest_text(hash_tree(stored)))

    with pytest.raises(UntrustedModelError, match="manifest model_manifest.json .* was changed after registration"):
        load_verified_model(uri, tmp_path / "copy")


def test_a_model_without_a_manifest_or_outside_the_registry_is_refused(experiment, tmp_path):
    uri, stored = register(experiment, manifest=False)

    with pytest.raises(UntrustedModelError, match="has no Tessera manifest"):
        load_verified_model(uri, tmp_path / "copy")
    with pytest.raises(UntrustedModelError, match="not a registered model URI"):
        load_verified_model(str(stored), tmp_path / "copy")
    with pytest.raises(UntrustedModelError, match="Cannot find models:/no-such-model/1 in the model registry"):
        load_verified_model("models:/no-such-model/1", tmp_path / "copy")


def test_the_compiled_program_is_registered_self_contained_with_a_manifest_that_verifies(tmp_path_factory, tmp_path):
    import dspy
    import yaml
    from mlflow.tracing.provider import is_tracing_enabled

    import pipeline.serving.model
    from tests.pipeline.serving.tessera_models import registered_model

    uri = registered_model(tmp_path_factory)

    # Tests run with tracing off (as a deployment may); logging the model turned it on only while it logged.
    assert not is_tracing_enabled()
    model_dir = download_verified_model(uri, tmp_path / "copy")
    assert (model_dir / "model.py").read_text() == Path(pipeline.serving.model.__file__).read_text()
    # Tessera's own code travels with the model, without bytecode; the guard configuration is its own artifact.
    assert (model_dir / "code" / "pipeline" / "serving" / "program.py").is_file()
    assert {"guardrails", "signatures", "eval_sets"} <= {path.name for path in (model_dir / "code").iterdir()}
    assert not list(model_dir.rglob("*.pyc"))
    assert {path.name for path in (model_dir / "artifacts").iterdir()} >= {"settings.json", "guards.json", "index.tar.gz"}
    # The index's preallocated files are mostly zeros, which the packed snapshot does not store.
    assert (model_dir / "artifacts" / "index.tar.gz").stat().st_size < 5_000_000
    flavor = yaml.safe_load((model_dir / "MLmodel").read_text())["flavors"]["python_function"]
    assert flavor["config"] == {"program": "rag", "model_alias": None, "tracing": None} and flavor["code"] == "code"
    assert (model_dir / "input_example.json").is_file()
    # The installed distribution's requirements, without the test extra.
    requirements = (model_dir / "requirements.txt").read_text().splitlines()
    assert f"dspy=={dspy.__version__}" in requirements and f"mlflow=={mlflow.__version__}" in requirements
    assert not any(line.startswith("pytest") for line in requirements)


def test_a_registered_version_carries_its_evaluation_as_tags(tmp_path_factory):
    from tests.pipeline.serving.tessera_models import registered_model

    name = registered_model(tmp_path_factory).split("/")[1]
    version = mlflow.MlflowClient().get_model_version(name, "1")

    assert version.tags["tessera.program"] == "rag"
    assert version.tags["tessera.eval.test.objective.baseline"] == "0.1"
    assert version.tags["tessera.eval.test.objective.compiled"] == "0.18"
    assert version.tags["tessera.eval.test.objective.ci_low"] == "0.02"
    assert float(version.tags["tessera.eval.dev.objective.delta"]) == pytest.approx(0.04)
    assert version.description == "compiled for the serving tests"
