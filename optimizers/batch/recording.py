"""A batch evaluation as one MLflow run: the eval set as a dataset input (named by file, digest its content hash),
the examples' traces with their scores as assessments through `mlflow.genai.evaluate`, the aggregate metrics with
their 95% CIs, the failure counts and the per-example table.

`mlflow.genai.evaluate` records here, it does not answer or score: the rows were answered and scored by an engine
(local threads or Spark; see optimizers/batch/local_engine.py for why), so each project metric and judge becomes a
`@scorer` that hands MLflow the score already computed for that trace. An example that failed is a scorer error.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from optimizers import tracking
from optimizers.batch.summary import Summary

log = logging.getLogger(__name__)

DATASET_CONTEXT = "evaluation"


class ExampleFailed(RuntimeError):
    """The example raised while it was answered or scored; MLflow shows this as the scorer's error."""


@contextlib.contextmanager
def evaluation_run(run_name: str, params: Mapping[str, Any], *, nested: bool = False) -> Iterator[Any]:
    """An MLflow run with tracing on (traces of the examples go to it), tracing restored after."""
    import mlflow
    from mlflow.tracing.provider import is_tracing_enabled

    was_on = is_tracing_enabled()
    mlflow.tracing.enable()
    try:
        with mlflow.start_run(run_name=run_name, nested=nested) as run:
            tracking.log_params(params)
            yield run
    finally:
        if not was_on:
            mlflow.tracing.disable()


@contextlib.contextmanager
def tracing_off() -> Iterator[None]:
    """No traces for an evaluation that is not recorded (--no-mlflow): the program's spans would still be exported
    to the tracking store, one per example, and cost time."""
    import mlflow
    from mlflow.tracing.provider import is_tracing_enabled

    was_on = is_tracing_enabled()
    mlflow.tracing.disable()
    try:
        yield
    finally:
        if was_on:
            mlflow.tracing.enable()


def log_eval_set(examples: Sequence[Any], name: str, digest: str) -> None:
    """The eval set as the run's dataset input, its digest the content hash compiles log too (examples_hash)."""
    import mlflow
    import pandas as pd

    frame = pd.DataFrame([example.toDict() for example in examples]).astype(str)
    mlflow.log_input(mlflow.data.from_pandas(frame, name=name, digest=digest), context=DATASET_CONTEXT)


def record_rows(run_id: str, rows: Sequence[dict], names: Sequence[str], summary: Summary, *, threads: int) -> None:
    """Assessments on each example's trace (genai.evaluate), then the aggregates and the per-example table."""
    if any(row["trace_id"] for row in rows):
        _assess_traces(run_id, rows, names, threads)
    metrics = {}
    for m in summary.metrics:
        metrics.update({m.name: m.mean, f"{m.name}_ci_low": m.low, f"{m.name}_ci_high": m.high})
    metrics.update({"examples": summary.examples, "failed": summary.failed, "errors": summary.errors})
    metrics.update({f"failed.{cause}": count for cause, count in summary.failures.items()})
    for c in summary.comparisons:
        key = f"diff.{c.metric}"
        metrics.update({key: c.delta, f"{key}_ci_low": c.low, f"{key}_ci_high": c.high})
    tracking.log_metrics(metrics)
    tracking.log_rows([{key: _cell(value) for key, value in row.items()} for row in rows], "per_example/results.json")


def _assess_traces(run_id: str, rows: Sequence[dict], names: Sequence[str], threads: int) -> None:
    import mlflow
    import pandas as pd
    from mlflow.genai.scorers import scorer

    mlflow.flush_trace_async_logging()
    traces = {trace.info.trace_id: trace for trace in mlflow.search_traces(run_id=run_id, return_type="list")}
    by_trace = {row["trace_id"]: row for row in rows if row["trace_id"] in traces}
    missing = len(rows) - len(by_trace)
    if missing:
        log.warning("%d of %d examples have no trace in run %s; their scores are in the per-example table only",
                    missing, len(rows), run_id)
    data = pd.DataFrame([{"trace": traces[trace_id], "expectations": {"expected_response": row["gold"]}}
                         for trace_id, row in by_trace.items()])

    def precomputed(name: str):
        def score(trace) -> float:
            row = by_trace[trace.info.trace_id]
            if row["error"]:
                raise ExampleFailed(row["error"])
            return float(row[name])

        return scorer(score, name=tracking.metric_key(name))

    # The traces exist already: no test call of a predict function; the scorers only hand over numbers.
    with tracking._environment(MLFLOW_GENAI_EVAL_MAX_WORKERS=str(max(1, threads)),
                               MLFLOW_GENAI_EVAL_SKIP_TRACE_VALIDATION="True"):
        mlflow.genai.evaluate(data=data, scorers=[precomputed(name) for name in names])


def _cell(value: Any) -> Any:
    """Table cells MLflow can store: lists as text."""
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
