"""Registering the scripted served model (scripted_served_model.py) with a manifest, for the front-door tests."""

import json
import uuid
from pathlib import Path

import mlflow
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import Array

from pipeline.serving.registry import record_manifest, tracing_on_while_logging

MODEL_CODE = Path(__file__).with_name("scripted_served_model.py")
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec(DataType.string, "question")]),
    outputs=Schema([
        ColSpec(DataType.string, "answer"), ColSpec(Array(DataType.string), "citations"),
        ColSpec(DataType.boolean, "blocked"), ColSpec(DataType.string, "guard"),
        ColSpec(DataType.long, "prompt_tokens"), ColSpec(DataType.long, "completion_tokens"),
    ]),
    params=ParamSchema([ParamSpec("request_id", DataType.string, ""), ParamSpec("api_key_id", DataType.string, "")]),
)


def register_scripted_model(root: Path, name: str | None = None, alias: str | None = "champion", *,
                            passages: str = json.dumps(["admin.md > Admin API"])) -> str:
    """Log and register the scripted model under a fresh name in the current tracking store; returns its URI
    (by alias when one is given). Passages that are not a JSON list make a model that fails to load."""
    name = name or f"tessera-http-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True, exist_ok=True)
    passages_file = root / "passages.json"
    passages_file.write_text(passages, encoding="utf-8")
    experiment_id = mlflow.create_experiment(f"http-{uuid.uuid4().hex[:8]}", artifact_location=(root / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment_id), tracing_on_while_logging():
        mlflow.pyfunc.log_model(
            name="model", python_model=str(MODEL_CODE), artifacts={"passages": str(passages_file)}, signature=SIGNATURE,
            pip_requirements=["mlflow", "pandas"], registered_model_name=name,
        )
    record_manifest(name, "1")
    if alias:
        mlflow.MlflowClient().set_registered_model_alias(name, alias, "1")
        return f"models:/{name}@{alias}"
    return f"models:/{name}/1"
