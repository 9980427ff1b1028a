"""`mlflow models serve` on the registered model, as MLflow users run it: /ping, /invocations with dataframe_records
and inputs, bad input answered 400 with a JSON error and no stack trace, then a good request still answered.

MLflow itself puts the traceback of any exception other than an MlflowException into the body (under
`stack_trace`); the model raises only MlflowExceptions, whose bodies carry `error_code` and `message` alone. MLflow
parses JSON by the signature first: a number or null sent as the question arrives as text ("42", "None"), and a
missing column is MLflow's own 400.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.pipeline.serving.tessera_models import ADMIN_ANSWER, ADMIN_QUESTION, registered_model, scripted_environment

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(url: str, body: bytes | dict, timeout: float = 60) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for_ping(url: str, server: subprocess.Popen, limit_s: float = 240) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"mlflow models serve exited with {server.returncode}: {server.stderr.read()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"mlflow models serve did not answer {url} within {limit_s} s")


@pytest.fixture
def mlflow_server(tmp_path_factory, mlflow_in_a_temporary_store):
    uri = registered_model(tmp_path_factory)
    port = free_port()
    env = scripted_environment(mlflow_in_a_temporary_store)
    # `mlflow models serve` starts uvicorn through `bash -c`, which must find the venv's executables.
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    server = subprocess.Popen(
        [str(VENV_BIN / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1",
         "-p", str(port), "--workers", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        wait_for_ping(f"http://127.0.0.1:{port}/ping", server)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


@pytest.mark.slow
def test_mlflow_models_serve_answers_rejects_bad_input_cleanly_and_keeps_serving(mlflow_server):
    invocations = f"{mlflow_server}/invocations"

    status, records = post(invocations, {"dataframe_records": [{"question": ADMIN_QUESTION}]})
    assert status == 200, records
    (row,) = records["predictions"]
    assert row["answer"] == ADMIN_ANSWER and row["citations"] and row["sources"][0] == "admin.md" and row["blocked"] is False

    status, inputs = post(invocations, {"inputs": [{"question": ADMIN_QUESTION}], "params": {"request_id": "r-1"}})
    assert status == 200 and inputs["predictions"][0]["answer"] == ADMIN_ANSWER

    bad = {
        "empty question": {"dataframe_records": [{"question": "  "}]},
        "no question column": {"dataframe_records": [{"query": ADMIN_QUESTION}]},
        "no rows": {"dataframe_split": {"columns": ["question"], "data": []}},
    }
    for what, body in bad.items():
        status, error = post(invocations, body)
        assert status == 400, (what, error)
        assert error["error_code"] in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST"), (what, error)
        assert "stack_trace" not in error and "Traceback" not in error["message"], (what, error)
    status, error = post(invocations, {"dataframe_records": [{"question": ""}]})
    assert "Question 1 is empty" in error["message"]
    status, error = post(invocations, b'{"dataframe_records": [')
    assert status == 400 and error["error_code"] == "BAD_REQUEST" and "stack_trace" not in error

    status, again = post(invocations, {"dataframe_records": [{"question": ADMIN_QUESTION}]})
    assert status == 200 and again["predictions"][0]["answer"] == ADMIN_ANSWER
