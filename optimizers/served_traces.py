"""Served requests as MLflow holds them: find the traces of a time window and read what each one recorded.

A served request is one trace whose root span is `tessera.<program>.request` (pipeline/serving/program.py). Its
program span (`rag` or `agent`) holds the question as the input guard let it through (or a placeholder when
`tracing.record_questions` is off), the answer, citations, the passages the answer was written from and whether a
guard blocked it; the guard spans hold every verdict; the request span holds the LM's token counts.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import ConfigError, TraceNotFoundError
from pipeline.programs.rag import QUESTION_NOT_RECORDED

log = logging.getLogger(__name__)

REQUEST_SPAN_PREFIX, REQUEST_SPAN_SUFFIX = "tessera.", ".request"
PROGRAM_SPANS = ("rag", "agent")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
GROUNDEDNESS_SPAN = "guard.output.groundedness"


@dataclass(frozen=True)
class GuardVerdict:
    guard: str
    allowed: bool
    checked: bool
    category: str | None


@dataclass
class ServedTrace:
    """What one served request recorded. `question` is None when the trace holds no question text."""

    trace_id: str
    timestamp_ms: int
    latency_ms: float | None
    question: str | None
    answer: str
    citations: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    contexts: list[str] = field(default_factory=list)
    blocked: bool = False
    verdicts: list[GuardVerdict] = field(default_factory=list)
    groundedness: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    model: str | None = None
    assessments: list[Any] = field(default_factory=list)

    def latest(self, name: str, source_type: str | None = None) -> Any | None:
        """The newest valid assessment called `name` (from `source_type`: HUMAN, LLM_JUDGE, CODE), or None."""
        found = [
            item for item in self.assessments
            if item.name == name and getattr(item, "valid", True) is not False
            and (source_type is None or item.source.source_type == source_type)
        ]
        return max(found, key=lambda item: item.create_time_ms or 0) if found else None


def is_served(trace: Any) -> bool:
    root = _root(trace)
    return root is not None and root.name.startswith(REQUEST_SPAN_PREFIX) and root.name.endswith(REQUEST_SPAN_SUFFIX)


def read_served_trace(trace: Any) -> ServedTrace:
    """The ServedTrace of an MLflow trace of a served request (see `is_served`)."""
    spans = trace.data.spans
    root = _root(trace)
    program = next((span for span in spans if span.name in PROGRAM_SPANS), None)
    inputs = (program.inputs if program is not None else None) or {}
    outputs = (program.outputs if program is not None else None) or {}
    question = inputs.get("question") if isinstance(inputs, dict) else None
    if not isinstance(question, str) or question == QUESTION_NOT_RECORDED:
        question = None
    usage = (root.outputs if root is not None else None) or {}
    citations = [str(item) for item in outputs.get("citations") or []]
    model = trace.info.tags.get("tessera.model_name")
    version = trace.info.tags.get("tessera.model_version")
    return ServedTrace(
        trace_id=trace.info.trace_id,
        timestamp_ms=int(trace.info.request_time),
        latency_ms=float(trace.info.execution_duration) if trace.info.execution_duration is not None else None,
        question=question,
        answer=str(outputs.get("answer", "")),
        citations=citations,
        sources=_sources(spans, citations),
        contexts=[str(item) for item in outputs.get("contexts") or []],
        blocked=bool(outputs.get("blocked", False)),
        verdicts=_verdicts(spans),
        groundedness=_groundedness(spans),
        prompt_tokens=_count(usage.get("prompt_tokens")) if isinstance(usage, dict) else None,
        completion_tokens=_count(usage.get("completion_tokens")) if isinstance(usage, dict) else None,
        model=f"{model}/{version}" if model and version else model,
        assessments=list(trace.info.assessments or []),
    )


def find_served_traces(
    since_ms: int | None = None,
    until_ms: int | None = None,
    *,
    limit: int | None = None,
    experiment_ids: Sequence[str] | None = None,
) -> list[ServedTrace]:
    """The served requests traced in [since_ms, until_ms) (epoch milliseconds), newest first, at most `limit`;
    from the given experiments, else from every experiment of the tracking store."""
    import mlflow

    locations = list(experiment_ids) if experiment_ids else _all_experiments()
    if not locations:
        return []
    # The store filters on the root span's name (the trace name), so only served requests are read.
    conditions = [f"trace.name LIKE '{REQUEST_SPAN_PREFIX}%{REQUEST_SPAN_SUFFIX}'"]
    if since_ms is not None:
        conditions.append(f"trace.timestamp_ms >= {int(since_ms)}")
    if until_ms is not None:
        conditions.append(f"trace.timestamp_ms < {int(until_ms)}")
    traces = mlflow.search_traces(
        locations=locations,
        filter_string=" AND ".join(conditions),
        max_results=limit,
        order_by=["timestamp_ms DESC"],
        return_type="list",
    )
    return [read_served_trace(trace) for trace in traces if is_served(trace)]


def get_served_trace(trace_id: str) -> ServedTrace:
    """The served request traced as `trace_id`; TraceNotFoundError saying where to find ids otherwise."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    trace_id = trace_id.strip()
    try:
        # The client raises for an unknown id; mlflow.get_trace would also log a warning the user need not see.
        trace = MlflowClient().get_trace(trace_id) if trace_id else None
    except MlflowException as exc:
        log.debug("get_trace(%r) failed: %s", trace_id, exc)
        trace = None
    if trace is None:
        raise TraceNotFoundError(
            f"No trace {trace_id!r} in the tracking store {mlflow.get_tracking_uri()}. Trace ids start with 'tr-'; "
            "list recent served requests with scripts/review.py, or set MLFLOW_TRACKING_URI to the store the server "
            "traced to."
        )
    if not is_served(trace):
        raise TraceNotFoundError(
            f"Trace {trace_id!r} is not a served request (its root span is not tessera.<program>.request); feedback "
            "is recorded on the traces of scripts/serve.py."
        )
    return read_served_trace(trace)


def experiment_ids_named(name: str | None) -> list[str] | None:
    """The id of experiment `name` as a one-item list (None for no name: every experiment); ConfigError if unknown."""
    import mlflow

    if name is None:
        return None
    found = mlflow.get_experiment_by_name(name)
    if found is None:
        raise ConfigError(f"No experiment {name!r} in the tracking store {mlflow.get_tracking_uri()}; leave out "
                          "--experiment to read every experiment's traces.")
    return [found.experiment_id]


def now_ms() -> int:
    return int(time.time() * 1000)


def duration_ms(text: str) -> int:
    """A duration as typed, `90s`, `30m`, `1h`, `7d`, `2w`, in milliseconds; ConfigError otherwise."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(f"Duration {text!r} is not a positive number with a unit: write for example 90s, 30m, 1h, "
                          "7d or 2w.")
    return int(float(match.group(1)) * _UNIT_MS[match.group(2)])


def _all_experiments() -> list[str]:
    from mlflow import MlflowClient

    return [experiment.experiment_id for experiment in MlflowClient().search_experiments()]


def _root(trace: Any) -> Any | None:
    return next((span for span in trace.data.spans if span.parent_id is None), None)


def _sources(spans: Sequence[Any], citations: Sequence[str]) -> list[str]:
    """The files of the cited chunks, in citation order, read from the retrieval spans' hit lists."""
    by_id: dict[str, str] = {}
    for span in spans:
        if span.name in ("retrieve", "rerank") and isinstance(span.outputs, list):
            by_id.update({str(hit.get("id")): str(hit.get("source")) for hit in span.outputs if isinstance(hit, dict)})
    return list(dict.fromkeys(by_id[citation] for citation in citations if citation in by_id))


def _verdicts(spans: Sequence[Any]) -> list[GuardVerdict]:
    found = []
    for span in spans:
        if not span.name.startswith("guard.") or span.name == "guard.context.stored":  # a span in older traces
            continue
        guard = span.name.split(".", 2)[-1]
        outputs = span.outputs if isinstance(span.outputs, list) else [span.outputs]
        found.extend(
            GuardVerdict(guard, bool(item.get("allowed", True)), bool(item.get("checked", True)), item.get("category"))
            for item in outputs if isinstance(item, dict)
        )
    return found


def _groundedness(spans: Sequence[Any]) -> float | None:
    span = next((span for span in spans if span.name == GROUNDEDNESS_SPAN), None)
    outputs = span.outputs if span is not None else None
    score = (outputs.get("scores") or {}).get("groundedness") if isinstance(outputs, dict) else None
    return float(score) if isinstance(score, (int, float)) else None


def _count(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None
