"""`scripts/evaluate.py` as a user runs it: an unknown model and a machine without Java are clear errors (exit 2),
and a candidate worse than its baseline fails the regression gate (exit 4) with a markdown report."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import dspy
import pytest

from optimizers.batch.target import EvaluationTarget
from pipeline.cli import EXIT_REGRESSION, EXIT_USER_ERROR
from pipeline.config import Settings
from pipeline.lm.scripted import FieldLM
from pipeline.programs.rag import RAG
from pipeline.retrieval.guarded import GuardedRetrieval

ROOT = Path(__file__).resolve().parents[2]
EVALUATE = ROOT / "scripts/evaluate.py"
DOCS = {
    "ports.md": "# Ports\n\nThe admin API listens on port 9180.\n",
    "logs.md": "# Logs\n\nAccess logs are written to /var/log/corvid/access.log.\n",
}
QA = [
    {"id": "admin", "question": "Which port does the admin API listen on?",
     "answer": "The admin API listens on port 9180.", "sources": ["ports.md"]},
    {"id": "logs", "question": "Where are access logs written?",
     "answer": "Access logs are written to /var/log/corvid/access.log.", "sources": ["logs.md"]},
]


def script():
    spec = importlib.util.spec_from_file_location("script_evaluate", EVALUATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(monkeypatch, *args) -> int:
    monkeypatch.setattr(sys, "argv", ["evaluate.py", *args])
    with pytest.raises(SystemExit) as exited:
        script().main()
    return exited.value.code


def test_a_model_that_does_not_exist_exits_2_with_what_to_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TESSERA_", "MLFLOW_")) or k == "TESSERA_LM"}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path}/mlflow.db"
    result = subprocess.run([sys.executable, str(EVALUATE), "--model", "models:/no-such-model@champion", "--no-mlflow",
                             str(ROOT / "eval_sets/qa.jsonl")], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)

    assert result.returncode == EXIT_USER_ERROR, result.stderr
    assert "Traceback" not in result.stderr
    assert "error: Cannot find models:/no-such-model@champion in the model registry" in result.stderr


def test_spark_without_java_exits_2_saying_java_is_missing(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nowhere"))
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"question": "Which port?"}) + "\n", encoding="utf-8")

    code = main(monkeypatch, "--engine", "spark", "--model", "models:/tessera-rag@champion", str(questions),
                "--out", str(tmp_path / "answers.parquet"), "--no-mlflow")

    assert code == EXIT_USER_ERROR
    assert "Java is missing: JAVA_HOME is" in capsys.readouterr().err


@pytest.fixture
def toy_targets(indexed_retriever, monkeypatch):
    """`--model good` answers with the passage's sentence; `--model bad` answers nothing useful."""
    retriever = indexed_retriever(DOCS)

    def bad_reply(name, kind, prompt, coached=False):
        return "I do not know." if name == "answer" else "0"

    def load_target(model, settings, *, kind=None, with_lm=True):
        lm = FieldLM() if model == "good" else FieldLM(bad_reply)
        return EvaluationTarget(model, "rag", RAG(GuardedRetrieval(retriever, top_n=1)), Settings(), None, lm,
                                dspy.ChatAdapter())

    monkeypatch.setattr("optimizers.batch.job.load_target", load_target)


def test_a_candidate_worse_than_its_baseline_exits_4_with_a_report(toy_targets, monkeypatch, tmp_path, capsys):
    qa = tmp_path / "qa.jsonl"
    rows = [{**row, "id": f"{row['id']}-{copy}"} for copy in range(4) for row in QA]
    qa.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    report = tmp_path / "report.md"

    code = main(monkeypatch, "--model", "bad", "--baseline", "good", "--fail-on-regression", "0.02", "--threads", "2",
                "--report", str(report), "--no-mlflow", str(qa))

    assert code == EXIT_REGRESSION
    out = capsys.readouterr().out
    assert "REGRESSION beyond 0.02: token_f1 -0.917" in out
    assert "failed examples: 8 of 8" in out and "the generator failed with the right context in hand" in out
    assert "**REGRESSION beyond 0.02" in report.read_text(encoding="utf-8")

    assert main(monkeypatch, "--model", "good", "--baseline", "good", "--fail-on-regression", "0.02", "--no-mlflow",
                str(qa)) == 0
