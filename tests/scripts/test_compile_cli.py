"""`scripts/compile.py` as a user runs it: bad input fails clearly before any LM work; a real tiny compile on the
embedded LM logs an MLflow run and registers a model that loads and answers."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPILE = str(ROOT / "scripts/compile.py")


def script(name):
    spec = importlib.util.spec_from_file_location(f"script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(*args, cwd, env=None, timeout=600):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TESSERA_", "MLFLOW_")) or k == "TESSERA_LM"}
    return subprocess.run([sys.executable, COMPILE, *args], cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def assert_clean_failure(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--optimizer", "adamw"], "Valid optimizers: bootstrap, random_search, mipro, gepa, simba"),
        (["--metric", "bleurt"], "Metrics: exact_match, token_f1"),
        (["--program", "chatbot"], "Valid programs: rag, agent"),
        (["--budget", "max"], "Valid presets: light, medium, heavy"),
        (["--max-lm-calls", "0"], "max_lm_calls must be positive"),
        (["--optimizer", "simba", "--train", "5", "--dev", "5", "--test", "5"], "simba needs at least 8 training examples; the split has 5"),
        (["--train", "200", "--dev", "100"], "The eval set has 277 examples"),
        (["--set", "max_demoz=2"], "bootstrap has no hyper-parameter max_demoz"),
        (["--optimizer", "mipro", "--set", "auto=fast"], "Invalid value for auto: fast"),
    ],
)
def test_bad_arguments_fail_with_the_valid_choices(args, message, tmp_path):
    assert_clean_failure(run(*args, "--no-mlflow", cwd=tmp_path), message)


def test_compile_and_demo_use_the_collection_query_and_ingest_use(monkeypatch):
    # `make compile` then `scripts/query.py "…"` must find the collection compile indexed, with no flags.
    monkeypatch.setattr(sys, "argv", ["demo.py"])
    for args in (script("compile").parse_args([]), script("demo").parse_args()):
        assert load_settings(None, collection=args.collection).collection == load_settings(None).collection == "docs"
    assert script("compile").parse_args(["--collection", "mine"]).collection == "mine"


def test_malformed_eval_set_names_file_and_line(tmp_path):
    bad = tmp_path / "qa.jsonl"
    bad.write_text('{"question": "q", "answer": "a", "sources": ["a.md"]}\n{"question": "q2", "answer": "a2"}\n')
    assert_clean_failure(run("--eval-set", str(bad), "--no-mlflow", cwd=tmp_path), f"{bad}, line 2: missing sources")


def test_unwritable_mlflow_store_fails_before_any_lm_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run(cwd=tmp_path, env={"MLFLOW_TRACKING_URI": f"sqlite:///{blocker}/mlflow.db"})
    assert_clean_failure(result, "Cannot write to the MLflow tracking store")
    assert "LM:" not in result.stdout


def test_unreachable_lm_fails_before_any_work(tmp_path):
    env = {"TESSERA_LM": "openai/gpt-4.1-mini", "OPENAI_API_KEY": "sk-invalid", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    result = run("--no-mlflow", cwd=tmp_path, env=env, timeout=300)
    assert_clean_failure(result, "The task LM 'openai/gpt-4.1-mini' did not answer a test call")
    assert "baseline on dev" not in result.stdout


@pytest.mark.slow
def test_tiny_compile_on_the_embedded_lm_registers_a_model_that_answers(tmp_path, smollm2):
    import dspy
    import mlflow
    import pandas as pd

    from pipeline.lm.plain_adapter import PlainAdapter
    from pipeline.serving.registry import load_verified_model

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = run(
        "--train", "2", "--dev", "2", "--test", "2", "--max-answer-tokens", "16", "--set", "max_bootstrapped_demos=1",
        "--store", str(tmp_path / "store"), "--out", str(tmp_path / "compiled"),
        cwd=tmp_path, env={"MLFLOW_TRACKING_URI": uri},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "95% CI of diff" in result.stdout and "Result:" in result.stdout
    assert "registered as 'tessera-rag'" in result.stdout
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        run_info = mlflow.search_runs(experiment_names=["tessera"], output_format="list")[0]
        assert run_info.info.status == "FINISHED"
        assert run_info.data.params["task_lm"] == "local/smollm2"
        # Lineage: the demo corpus's manifest is the run's dataset input and the model version names it.
        version = mlflow.MlflowClient().get_model_version("tessera-rag", "1")
        inputs = mlflow.MlflowClient().get_run(run_info.info.run_id).inputs.dataset_inputs
        assert version.tags["tessera.index_manifests"][:36] == inputs[0].dataset.digest
        assert version.tags["tessera.eval_set_hash"] == run_info.data.params["eval_set_hash"]
        with dspy.context(lm=smollm2, adapter=PlainAdapter()):
            model = load_verified_model("models:/tessera-rag/1", tmp_path / "model")
            answers = model.predict(pd.DataFrame({"question": ["Which port does the admin API listen on?"]}))
        assert answers["answer"][0].strip() and answers["citations"][0]
    finally:
        mlflow.set_tracking_uri(previous)
