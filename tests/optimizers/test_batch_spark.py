"""The Spark engine: the same answers and scores as the local engine, failed rows kept with their error, and clear
errors for a table without questions and for a machine without Java. One SparkSession (local[1]) for the module's
tests; the registered test model answers with the scripted LM."""

import json
import os

import mlflow
import pandas as pd
import pytest

from optimizers.batch.job import EvaluationJob, run_evaluation_job
from optimizers.batch.local_engine import evaluate_rows
from optimizers.batch.records import metric_names
from optimizers.batch.spark_engine import start_spark
from optimizers.batch.target import load_target
from pipeline.config import Settings
from pipeline.errors import ConfigError, EvalSetError
from tests.pipeline.serving.tessera_models import (
    ADMIN_QUESTION,
    SCRIPTED_LM,
    VAULT_QUESTION,
    registered_model,
)

pytestmark = pytest.mark.slow  # Spark starts in about 10 s

QA = [
    {"id": "admin", "question": ADMIN_QUESTION, "answer": "port 8443", "sources": ["admin.md"]},
    {"id": "cert", "question": "What does the admin API need from a client?", "answer": "a client certificate",
     "sources": ["admin.md"]},
    {"id": "vault", "question": VAULT_QUESTION, "answer": "ultraviolet", "sources": ["vault.md"]},
    {"id": "hinges", "question": "When are the vault door hinges oiled?", "answer": "every spring",
     "sources": ["vault.md"]},
]


@pytest.fixture(scope="module")
def model_uri(tmp_path_factory):
    return registered_model(tmp_path_factory)


@pytest.fixture(scope="module")
def spark(model_uri):
    """Spark's Python workers inherit this environment: the scripted LM and the test tracking store."""
    saved = {name: os.environ.get(name) for name in ("TESSERA_SERVING_LM", "MLFLOW_TRACKING_URI")}
    os.environ.update(TESSERA_SERVING_LM=SCRIPTED_LM, MLFLOW_TRACKING_URI=mlflow.get_tracking_uri())
    session = start_spark("local[1]")  # one Python worker: one model load
    yield session
    session.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def spark_job(tmp_path, model_uri, questions, **kwargs):
    return EvaluationJob(eval_set=questions, settings=Settings(), model=model_uri, engine="spark",
                         out=tmp_path / "answers.parquet", spark_master="local[1]", **kwargs)


def test_spark_and_local_engines_give_the_same_answers_and_scores(spark, model_uri, tmp_path):
    questions = write_jsonl(tmp_path / "qa.jsonl", QA)
    on_spark = run_evaluation_job(spark_job(tmp_path, model_uri, questions, track=False))

    target = load_target(model_uri, Settings())
    try:
        from optimizers.batch.eval_sets import load_eval_set

        local = evaluate_rows(target, load_eval_set(questions, "rag"), metric_names("rag"), threads=2)
    finally:
        target.close()

    columns = ["id", "answer", "sources", "blocked", "failure", *metric_names("rag")]
    written = pd.read_parquet(on_spark.out).set_index("id").sort_index()
    assert len(written) == 4 and (written["error"] == "").all()
    by_id = {row["id"]: row for row in local}
    for name in columns[1:]:
        assert [written.loc[i, name] if name != "sources" else list(written.loc[i, name]) for i in sorted(by_id)] == \
               [by_id[i][name] for i in sorted(by_id)], name
    # The vault's answers name the deny-listed word: the output guard refuses them and drops their passages.
    assert written.loc["admin", "recall@5"] == 1.0 and written.loc["vault", "blocked"]
    assert written.loc["vault", "failure"] == "guard_refused"
    assert {m.name: m.mean for m in on_spark.summary.metrics}["recall@5"] == 0.5


def test_failed_rows_are_kept_with_their_error_and_counted(spark, model_uri, tmp_path):
    rows = [{"question": ADMIN_QUESTION}, {"question": "   "}, {"question": VAULT_QUESTION}]
    questions = tmp_path / "questions.parquet"
    pd.DataFrame(rows).to_parquet(questions)

    report = run_evaluation_job(spark_job(tmp_path, model_uri, questions, track=True))

    written = pd.read_parquet(report.out)
    assert len(written) == 3
    failed = written[written["error"] != ""]
    assert len(failed) == 1 and "Question 1 is empty" in failed["error"].iloc[0]
    assert (written[written["error"] == ""]["answer"] != "").all()
    assert report.summary.errors == 1
    run = mlflow.get_run(report.run_id)
    assert run.data.metrics["errors"] == 1.0 and run.data.params["engine"] == "spark"


def test_a_table_without_a_question_column_is_refused_naming_its_columns(spark, model_uri, tmp_path):
    questions = tmp_path / "prompts.parquet"
    pd.DataFrame({"prompt": ["Which port?"], "id": ["a"]}).to_parquet(questions)

    with pytest.raises(EvalSetError, match=r"has no 'question' column \(columns: prompt, id\)"):
        run_evaluation_job(spark_job(tmp_path, model_uri, questions, track=False))


def test_spark_without_java_says_java_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))
    with pytest.raises(ConfigError, match="Java is missing: JAVA_HOME is .*no-java, which has no bin/java"):
        start_spark("local[1]")
    monkeypatch.delenv("JAVA_HOME")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="Java is missing: no java on PATH"):
        start_spark("local[1]")
