"""A batch evaluation on the Spark engine: the registered model verified and copied once, the questions answered
and scored on Spark (optimizers/batch/spark_engine.py), every row written to Parquet, the conclusions read back."""

from __future__ import annotations

import tempfile
from pathlib import Path

from optimizers import tracking
from optimizers.batch.records import metric_names
from optimizers.batch.spark_engine import GOLD_SOURCES, answer_table, read_questions, start_spark
from optimizers.batch.summary import EvaluationReport, summarize


def run_spark_job(job, say):
    """`job` is an optimizers.batch.job.EvaluationJob with engine spark; returns its EvaluationReport."""
    from optimizers.batch.target import registered_uri
    from pipeline.serving.registry import download_verified_model

    uri = registered_uri(job.model)
    say(f"starting Spark on {job.spark_master}")
    spark = start_spark(job.spark_master)  # first: a machine without Java fails before any download
    say(f"verifying and copying {job.model}")
    model_dir = download_verified_model(uri, Path(tempfile.mkdtemp(prefix="tessera-spark-model-")))
    questions = read_questions(spark, job.eval_set)
    scored = GOLD_SOURCES in questions.columns
    names = list(metric_names("rag")) if scored else []
    say(f"answering {job.eval_set} with {job.model} on Spark{' and scoring the answers' if scored else ''}")
    answer_table(questions, model_dir, score=scored).write.mode("overwrite").parquet(str(job.out))
    rows = spark.read.parquet(str(job.out)).drop("guard").toPandas().to_dict("records")
    for row in rows:
        row["sources"], row["citations"] = list(row["sources"]), list(row["citations"])
    summary = summarize(job.model, rows, names, seed=job.seed)
    run_id = None
    if job.track:
        from optimizers.batch.recording import evaluation_run, record_rows

        params = {"model": job.model, "eval_set": str(job.eval_set), "examples": len(rows), "engine": "spark",
                  "spark_master": job.spark_master, "out": str(job.out)}
        with evaluation_run(f"evaluate {job.model} on Spark", params) as run:
            for row in rows:
                row["trace_id"] = ""  # the workers record no trace per question
            record_rows(run.info.run_id, rows, names, summary, threads=1)
            tracking.log_params({"scored": scored})
            run_id = run.info.run_id
    return EvaluationReport(summary, rows, run_id=run_id, out=job.out)
