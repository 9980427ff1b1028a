"""Several workers: two processes load the same registered model at the same time, each searches its own copy of
the index, both answer, and the registered files are left exactly as they were registered."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.serving.registry import download_verified_model
from tests.pipeline.serving.tessera_models import ADMIN_ANSWER, ADMIN_QUESTION, registered_model, scripted_environment

ROOT = Path(__file__).resolve().parents[3]
WORKER = """
import json, os, sys, time
import mlflow, pandas as pd

started = time.time()
model = mlflow.pyfunc.load_model(sys.argv[1])
loaded = time.time()
answer = model.predict(pd.DataFrame({"question": [sys.argv[2]]}))["answer"][0]
index = str(model.unwrap_python_model().settings.store.path)
print(json.dumps({"started": started, "loaded": loaded, "answer": answer, "index": index, "index_exists": os.path.isdir(index)}))
"""


@pytest.mark.slow
def test_two_processes_load_one_model_uri_at_once_and_both_answer(tmp_path_factory, tmp_path, mlflow_in_a_temporary_store):
    uri = registered_model(tmp_path_factory)
    env = {**scripted_environment(mlflow_in_a_temporary_store), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}

    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, uri, ADMIN_QUESTION], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=300) for worker in workers]

    assert [worker.returncode for worker in workers] == [0, 0], [err[-2000:] for _, err in outputs]
    first, second = (json.loads(out.strip().splitlines()[-1]) for out, _ in outputs)
    assert first["answer"] == second["answer"] == ADMIN_ANSWER
    # Both had the model open at the same time, each on a private copy of the index, removed when it exited.
    assert max(first["started"], second["started"]) < min(first["loaded"], second["loaded"])
    assert first["index"] != second["index"] and first["index_exists"] and second["index_exists"]
    assert not Path(first["index"]).exists() and not Path(second["index"]).exists()
    # The registered files still match the manifest recorded at registration: nothing wrote into them.
    download_verified_model(uri, tmp_path / "check")
