"""A batch evaluation job on a registered model: one MLflow run holding the eval set as a dataset with its content
hash, each example's trace with its scores as assessments, the aggregates with CIs; a baseline compared by example
and a markdown report. The registered test model answers with the scripted LM."""

import json

import mlflow
import pytest

from optimizers.batch.job import EvaluationJob, check_job, run_evaluation_job
from optimizers.evaluation import examples_hash
from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.qa_set import load_qa
from tests.pipeline.serving.tessera_models import ADMIN_QUESTION, SCRIPTED_LM, registered_model

QA = [
    {"id": "admin", "question": ADMIN_QUESTION, "answer": "port 8443", "sources": ["admin.md"]},
    {"id": "cert", "question": "What does the admin API need from a client?", "answer": "a client certificate",
     "sources": ["admin.md"]},
    {"id": "hinges", "question": "When are the vault door hinges oiled?", "answer": "every spring",
     "sources": ["vault.md"]},
]


@pytest.fixture
def model_uri(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("TESSERA_SERVING_LM", SCRIPTED_LM)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow.get_tracking_uri())  # where the test model is registered
    return registered_model(tmp_path_factory)


@pytest.fixture
def qa_file(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in QA), encoding="utf-8")
    return path


def test_one_run_holds_the_dataset_traces_with_assessments_and_metrics_with_cis(model_uri, qa_file, tmp_path):
    job = EvaluationJob(eval_set=qa_file, settings=Settings(), model=model_uri, threads=2, baseline=model_uri,
                        fail_on_regression=0.02, report=tmp_path / "report.md")
    stages = []

    report = run_evaluation_job(job, stage=stages.append)

    assert not report.regressed and len(report.rows) == 3
    run = mlflow.get_run(report.run_id)
    assert run.data.params["eval_set_hash"] == examples_hash(load_qa(qa_file))
    assert run.data.params["threads"] == "2" and run.data.params["model"] == model_uri
    dataset = next(i.dataset for i in run.inputs.dataset_inputs if i.dataset.name == "qa.jsonl")
    assert dataset.digest == examples_hash(load_qa(qa_file))
    assert run.data.metrics["recall_at_5"] == pytest.approx(2 / 3)  # the hinges answer is refused by the guard
    assert run.data.metrics["recall_at_5_ci_low"] <= 2 / 3 <= run.data.metrics["recall_at_5_ci_high"]
    assert run.data.metrics["failed.guard_refused"] == 1.0 and run.data.metrics["diff.token_f1"] == 0.0
    traces = mlflow.search_traces(run_id=report.run_id, return_type="list")
    by_id = {row["trace_id"]: row for row in report.rows}
    admin = next(t for t in traces if by_id.get(t.info.trace_id, {}).get("id") == "admin")
    scores = {a.name: a.value for a in admin.info.assessments if a.name in ("token_f1", "recall_at_5")}
    assert scores == {"token_f1": by_id[admin.info.trace_id]["token_f1"], "recall_at_5": 1.0}
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "## Against " in markdown and "regression gate passed" in markdown
    assert "| hinges | guard_refused |" in markdown
    assert any("on 2 threads" in stage for stage in stages)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"engine": "ray"}, "Unknown engine 'ray'"),
        ({"fail_on_regression": 0.02}, "give --baseline URI too"),
        ({"threads": 0}, "--threads must be at least 1"),
        ({"retriever_only": True, "judges": ["correctness"]}, "--retriever-only calls no LM"),
        ({"judges": ["vibes"]}, "Unknown judge 'vibes'"),
        ({"engine": "spark", "model": "run.json"}, "--engine spark answers with a registered model"),
        ({"engine": "spark", "model": "models:/m/1"}, "give --out answers.parquet"),
    ],
)
def test_a_request_that_cannot_run_is_refused_before_anything_loads(tmp_path, changes, message):
    job = EvaluationJob(eval_set=tmp_path / "qa.jsonl", settings=Settings(), **changes)
    if job.engine == "spark" and "model" in changes and changes["model"].startswith("models:"):
        job.eval_set = tmp_path / "q.parquet"
    with pytest.raises(ConfigError, match=message):
        check_job(job)
