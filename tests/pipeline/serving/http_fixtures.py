"""The front-door tests' shared parts: the scripted served model (scripted_served_model.py) registered with a
manifest, and starting, calling and stopping a server subprocess."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import Array

from pipeline.serving.registry import record_manifest, tracing_on_while_logging

MODEL_CODE = Path(__file__).with_name("scripted_served_model.py")
ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, headers: dict | None = None, body: bytes | None = None, timeout: float = 30) -> tuple[int, Any, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def start(command: list[str], cwd: Path, env: dict, ready_url: str) -> subprocess.Popen:
    """Start a server and wait until `ready_url` answers 200; fail with its output when it exits first."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{command[1]} exited with {process.returncode}:\n{process.stdout.read()}")
        try:
            if get(ready_url, timeout=2)[0] == 200:
                return process
        except OSError:
            pass
        time.sleep(0.3)
    stop(process)
    pytest.fail(f"{command[1]} did not answer {ready_url} within {START_TIMEOUT_S} s:\n{process.stdout.read()}")


def stop(process: subprocess.Popen) -> int:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait(timeout=10)


def environment(tracking_uri: str, **extra: str) -> dict:
    env = {name: value for name, value in os.environ.items() if not name.startswith("TESSERA_") or name == "TESSERA_LM"}
    env.update(MLFLOW_TRACKING_URI=tracking_uri, PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}", **extra)
    return env

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
