"""The local engine: answer (or only retrieve for) every example on a pool of threads, score each answer, and keep
every example as one row, failures included.

Answering is not left to `mlflow.genai.evaluate`'s pool: measured here, 16 examples against a 200 ms LM took 36 s
through it at 8 workers (27 s at 1: its per-row trace and assessment writes dominate), against 0.4 s on DSPy's
executor. So the rows are answered and scored here, where the thread count is the user's, and MLflow records them
afterwards (optimizers/batch/recording.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dspy
from dspy.utils.parallelizer import ParallelExecutor

from optimizers.batch.records import answer_record, failure_class, retrieval_record, score_record
from optimizers.batch.target import EvaluationTarget

log = logging.getLogger(__name__)

RowProgress = Callable[[int, int], None]
"""Called after each example with (examples done, examples in the evaluation)."""


def evaluate_rows(
    target: EvaluationTarget,
    examples: Sequence[dspy.Example],
    metrics: Sequence[str],
    *,
    judges: Mapping[str, dspy.Module] | None = None,
    judge_lm: dspy.BaseLM | None = None,
    threads: int = 1,
    retriever_only: bool = False,
    trace: bool = False,
    progress: RowProgress | None = None,
) -> list[dict[str, Any]]:
    """One row per example, in the examples' order: id, question, gold answer, the record's answer, sources,
    citations and blocked flag, each metric and judge score, `error` ("" when it ran), `failure` (a
    records.FAILURE_CLASSES name, "" when it passed) and `trace_id` (with `trace`, the MLflow trace of the example).

    An example whose program, metric or judge raised scores 0 everywhere and keeps the error, so failures are
    counted instead of passing for bad answers. `retriever_only` calls the retrieval alone: no LM is called.
    """
    names = [*metrics, *(judges or {})]
    retrieval = _retrieval(target) if retriever_only else None
    lock = threading.Lock()
    done = 0

    def run(example: dspy.Example) -> dict[str, Any]:
        nonlocal done
        row = _scored(target, retrieval, example, metrics, judges, judge_lm, names, retriever_only, trace)
        if progress is not None:
            with lock:
                done += 1  # DSPy may re-run a straggler, so cap at the total
                progress(min(done, len(examples)), len(examples))
        return row

    executor = ParallelExecutor(num_threads=max(1, threads), disable_progress_bar=True, max_errors=len(examples) + 1)
    return executor.execute(run, list(examples))


def _retrieval(target: EvaluationTarget):
    """The program's own retrieval (RAG), or the one the agent's search tool is built with."""
    from pipeline.wiring import build_retrieval

    return getattr(target.program, "retrieval", None) or build_retrieval(target.settings, target.store)


def _scored(target, retrieval, example, metrics, judges, judge_lm, names, retriever_only, trace) -> dict[str, Any]:
    import mlflow

    row: dict[str, Any] = {"id": str(example.get("id") or example.question), "question": example.question,
                           "gold": str(example.get("answer") or ""), "answer": "", "sources": [], "citations": [],
                           "blocked": False, "error": "", "failure": "", "trace_id": ""}
    record: dict[str, Any] = {}
    scores: dict[str, float] = dict.fromkeys(names, 0.0)
    try:
        if trace:
            with mlflow.start_span(name="tessera.eval.example", span_type="CHAIN") as span:
                span.set_inputs({"question": example.question})
                row["trace_id"] = span.trace_id
                record = _respond(target, retrieval, example)
                span.set_outputs({key: record[key] for key in ("answer", "sources", "citations", "blocked")})
        else:
            record = _respond(target, retrieval, example)
        row.update({key: record[key] for key in ("answer", "sources", "citations", "blocked")})
        scores = score_record(example, record, metrics, judges, judge_lm)
    except Exception as exc:  # noqa: BLE001 - one failing example is recorded and counted, not fatal
        row["error"] = f"{type(exc).__name__}: {exc}"[:1000]
        scores = dict.fromkeys(names, 0.0)
        log.warning("example %s failed: %s", row["id"], row["error"])
    row.update(scores)
    kind = "rag" if retriever_only else target.kind
    row["failure"] = failure_class(kind, record, scores, error=row["error"], gold_sources=example.get("sources") or [],
                                   retriever_only=retriever_only)
    return row


def _respond(target: EvaluationTarget, retrieval, example: dspy.Example) -> dict[str, Any]:
    if retrieval is not None:
        return retrieval_record(retrieval(example.question).hits)
    from dspy.utils.usage_tracker import track_usage

    with track_usage() as usage, target.dspy_context():
        prediction = target.program(**example.inputs())
    return answer_record(prediction, usage.get_total_tokens())
