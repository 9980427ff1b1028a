"""The MLflow store: where it lives by default, and that no compile run is left RUNNING by a process that is gone."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from optimizers.tracking import HOST_TAG, NOTE_TAG, PID_TAG, compile_run, open_tracking

ROOT = Path(__file__).resolve().parents[2]


def test_default_store_is_the_working_folders_mlflow_db(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert open_tracking("tests") == f"sqlite:///{tmp_path}/mlflow.db"
    assert (tmp_path / "mlflow.db").is_file()
    assert mlflow.get_experiment_by_name("tests").artifact_location == (tmp_path / "mlartifacts").as_uri()


def dead_pid() -> str:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # reaped, so the pid names no process
    return str(finished.pid)


def test_a_run_left_running_by_a_dead_process_is_marked_failed_by_the_next_compile(tracked):
    client = MlflowClient()
    experiment = mlflow.get_experiment_by_name("tests").experiment_id
    here = socket.gethostname()
    dead = client.create_run(experiment, tags={HOST_TAG: here, PID_TAG: dead_pid()}, run_name="killed").info.run_id
    child = client.create_run(experiment, tags={"mlflow.parentRunId": dead}, run_name="eval_0").info.run_id
    alive = client.create_run(experiment, tags={HOST_TAG: here, PID_TAG: str(os.getpid())}).info.run_id
    elsewhere = client.create_run(experiment, tags={HOST_TAG: "another-host", PID_TAG: dead_pid()}).info.run_id

    with compile_run("next"):
        pass

    status = {run_id: client.get_run(run_id).info.status for run_id in (dead, child, alive, elsewhere)}
    assert status == {dead: "FAILED", child: "FAILED", alive: "RUNNING", elsewhere: "RUNNING"}
    note = client.get_run(dead).data.tags[NOTE_TAG]
    assert "Marked FAILED by a later compile" in note and here in note


def test_sigterm_ends_the_run_as_killed(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    compile_in_progress = textwrap.dedent(
        """
        import sys, time
        import mlflow
        from optimizers.tracking import compile_run

        mlflow.set_tracking_uri(sys.argv[1])
        mlflow.set_experiment("tests")
        with compile_run("doomed") as run:
            print(run.info.run_id, flush=True)
            time.sleep(120)
        """
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    process = subprocess.Popen([sys.executable, "-c", compile_in_progress, uri], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        run_id = process.stdout.readline().strip()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        process.kill()
    mlflow.set_tracking_uri(uri)
    assert run_id and mlflow.get_run(run_id).info.status == "KILLED"
