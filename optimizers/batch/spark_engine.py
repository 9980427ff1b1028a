"""The Spark engine: answer a table of questions with a registered model on PySpark (`local[*]`, or any master
URL), score the answers where the table carries gold answers and sources, and write every row, failed rows with
their error, to Parquet.

Input: JSONL, CSV or Parquet with a `question` column (optional: `id`, gold `answer` and `sources`, an array, or in
CSV a `;`-separated list), or a Delta table folder where delta-spark is installed.

Each Python worker loads the verified model copy once with `mlflow.pyfunc.load_model` (the model's `load_context`
per worker, as `mlflow.pyfunc.spark_udf` does) and answers its Arrow batches through `mapInPandas`. Not through
`spark_udf` itself: its UDF has no way to keep a failed row; the model raises for the question it cannot answer,
which fails the whole 500-row batch, then the task, then the job. Here a batch that raises is answered again row by
row, so only the failing rows carry an error, and the job finishes.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from optimizers.batch.records import failure_class, metric_names, score_record
from pipeline.errors import ConfigError, EvalSetError

log = logging.getLogger(__name__)

QUESTION, ID, GOLD_ANSWER, GOLD_SOURCES = "question", "id", "gold", "gold_sources"
OUTPUT_FIELDS = ("answer string, citations array<string>, sources array<string>, blocked boolean, guard string, "
                 "prompt_tokens long, completion_tokens long")
_loaded: dict[str, Any] = {}  # per Python worker: the model directory's loaded model


def start_spark(master: str = "local[*]", app_name: str = "tessera-evaluate"):
    """A SparkSession on `master`; ConfigError with the fix when Java is missing or Spark does not start."""
    java = _java()
    os.environ["PYSPARK_PYTHON"] = sys.executable  # the workers run this venv's Python, where Tessera is installed
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError("PySpark is not installed. Install Tessera's dependencies: pip install -e .") from exc
    try:
        return (SparkSession.builder.master(master).appName(app_name)
                .config("spark.ui.enabled", "false")
                .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                .config("spark.driver.extraJavaOptions", "-Dlog4j.rootLogger=ERROR")
                .getOrCreate())
    except Exception as exc:  # noqa: BLE001 - a JVM that does not start has many faces; the fix is the same
        raise ConfigError(
            f"Spark did not start on master {master!r} with Java {java}: {type(exc).__name__}: {str(exc)[:500]}. "
            "Check that Java 17 or later runs (java -version) and that the master URL is reachable."
        ) from exc


def _java() -> str:
    """The java Spark will run: JAVA_HOME's when it is set, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        if not java.is_file():
            raise ConfigError(
                f"Java is missing: JAVA_HOME is {home}, which has no bin/java. Spark needs Java 17 or later: "
                "point JAVA_HOME at a JDK or JRE (or unset it), or install one "
                "(apt-get install openjdk-17-jre-headless)."
            )
        return str(java)
    found = shutil.which("java")
    if found is None:
        raise ConfigError(
            "Java is missing: no java on PATH and JAVA_HOME is not set. Spark needs Java 17 or later: install it "
            "(apt-get install openjdk-17-jre-headless) or set JAVA_HOME to a JDK."
        )
    return found


def read_questions(spark, path: Path):
    """The questions table of `path`, its columns renamed to the engine's: question, id, gold, gold_sources."""
    from pyspark.sql import functions as F

    if not path.exists():
        raise EvalSetError(f"Questions file {path} does not exist.")
    suffix = path.suffix.lower()
    if path.is_dir() and (path / "_delta_log").is_dir():
        if not _has_delta():
            raise EvalSetError(f"{path} is a Delta table, and delta-spark is not installed: pip install delta-spark.")
        frame = spark.read.format("delta").load(str(path))
    elif suffix in (".jsonl", ".json"):
        frame = spark.read.json(str(path))
    elif suffix == ".csv":
        frame = spark.read.option("header", True).option("multiLine", True).option("escape", '"').csv(str(path))
    elif suffix == ".parquet" or path.is_dir():
        frame = spark.read.parquet(str(path))
    else:
        raise EvalSetError(f"{path}: read JSONL, CSV, Parquet or a Delta table folder, not {suffix or 'this file'}.")
    columns = frame.columns
    if "_corrupt_record" in columns:
        raise EvalSetError(f"{path} holds lines that are not JSON objects; each line must be one JSON object.")
    if QUESTION not in columns:
        raise EvalSetError(
            f"{path} has no {QUESTION!r} column (columns: {', '.join(columns) or 'none'}). Name the column that holds "
            f"the questions {QUESTION!r}."
        )
    ids = F.col(ID) if ID in columns else F.monotonically_increasing_id()
    selected = [F.col(QUESTION).cast("string").alias(QUESTION), ids.cast("string").alias(ID)]
    if "answer" in columns and "sources" in columns:
        sources = F.col("sources")
        if dict(frame.dtypes)["sources"] == "string":
            sources = F.split(sources, ";")
        selected += [F.col("answer").cast("string").alias(GOLD_ANSWER),
                     sources.cast("array<string>").alias(GOLD_SOURCES)]
    return frame.select(*selected)


def _has_delta() -> bool:
    from importlib import util

    return util.find_spec("delta") is not None


def answer_table(questions, model_dir: Path, *, score: bool):
    """`questions` answered by the model in `model_dir`, one output row per input row, with `error` ("" when it
    answered), `failure` and, with `score`, the RAG metrics."""
    names = list(metric_names("rag")) if score else []
    schema = f"{ID} string, {QUESTION} string, {OUTPUT_FIELDS}, error string, failure string" + "".join(
        f", `{name}` double" for name in names)

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        return answer_batches(batches, str(model_dir), names)

    return questions.mapInPandas(run, schema=schema)


def answer_batches(batches: Iterator[Any], model_dir: str, names: Sequence[str]) -> Iterator[Any]:
    """Runs in a Spark Python worker: each pandas batch answered, a batch that raises answered row by row."""
    import pandas as pd

    model = _worker_model(model_dir)
    for batch in batches:
        yield pd.DataFrame([_row(item, answer, names) for item, answer in zip(batch.to_dict("records"),
                                                                              _answers(model, batch), strict=True)])


def _worker_model(model_dir: str):
    if model_dir not in _loaded:
        import mlflow

        from pipeline.serving.registry import PICKLE_SWITCH

        os.environ[PICKLE_SWITCH] = "false"  # the copy was verified against its manifest; never unpickle
        # A batch job's requests are the job's, not served traffic: no trace per question from every worker.
        _loaded[model_dir] = mlflow.pyfunc.load_model(model_dir, model_config={"tracing": False})
    return _loaded[model_dir]


def _answers(model, batch) -> list[dict[str, Any] | Exception]:
    import pandas as pd

    try:
        return model.predict(pd.DataFrame({QUESTION: batch[QUESTION]})).to_dict("records")
    except Exception:  # noqa: BLE001 - find the rows that fail; the others are answered
        answers: list[dict[str, Any] | Exception] = []
        for question in batch[QUESTION]:
            try:
                answers.extend(model.predict(pd.DataFrame({QUESTION: [question]})).to_dict("records"))
            except Exception as exc:  # noqa: BLE001 - kept with the row
                answers.append(exc)
        return answers


def _row(item: dict[str, Any], answer: dict[str, Any] | Exception, names: Sequence[str]) -> dict[str, Any]:
    import dspy

    row: dict[str, Any] = {ID: item[ID], QUESTION: item[QUESTION], "answer": "", "citations": [], "sources": [],
                           "blocked": False, "guard": "[]", "prompt_tokens": 0, "completion_tokens": 0, "error": "",
                           "failure": ""}
    scores = dict.fromkeys(names, 0.0)
    if isinstance(answer, Exception):
        row["error"] = f"{type(answer).__name__}: {answer}"[:1000]
    else:
        row.update({key: answer[key] for key in answer})
        row["citations"], row["sources"] = [str(c) for c in row["citations"]], [str(s) for s in row["sources"]]
    gold_sources = list(item.get(GOLD_SOURCES) if item.get(GOLD_SOURCES) is not None else [])
    if names and not row["error"]:
        example = dspy.Example(question=item[QUESTION], answer=item.get(GOLD_ANSWER) or "", sources=gold_sources)
        try:
            scores = score_record(example, row, names)
        except Exception as exc:  # noqa: BLE001 - a row the metrics cannot score is failed, not fatal
            row["error"] = f"{type(exc).__name__}: {exc}"[:1000]
    if names or row["error"]:  # unscored rows (no gold answers) fail only by raising
        row["failure"] = failure_class("rag", row, scores, error=row["error"], gold_sources=gold_sources)
    row.update(scores)
    return row
