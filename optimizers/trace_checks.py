"""The checks a served answer can get with no ground truth: two LLM judges and what the trace itself records.

LLM judges (source LLM_JUDGE): `answer_relevance` (question and answer) and `faithfulness` (answer and the passages
it was written from). From the trace (source CODE): `groundedness` (the output guard's score, else the same lexical
score computed from the passages), `guard_passed` (1 when no guard blocked the request), `latency_ms` and
`cost_usd` (token counts times the LM's prices). A check the trace cannot support (no question text recorded, no
passages) is left out of that trace's scores rather than guessed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dspy

from optimizers.judges import make_judge
from optimizers.served_traces import ServedTrace

log = logging.getLogger(__name__)

JUDGED = ("answer_relevance", "faithfulness")
MEASURED = ("groundedness", "guard_passed", "latency_ms", "cost_usd")
CHECKS = (*JUDGED, *MEASURED)
CODE_SOURCE_ID = "tessera.monitor"
JUDGE_MAX_TOKENS = 512


@dataclass(frozen=True)
class JudgeLM:
    """The LM (and adapter) judges run on, and its name for the assessments' source id."""

    lm: dspy.BaseLM
    adapter: Any
    name: str


def judge_lm_named(name: str, *, dtype: str = "auto") -> JudgeLM:
    """The judging LM for an LM string: `scripted/<ms>` (tests, benchmarks), a LiteLLM string or an embedded LM."""
    from pipeline.lm.factory import make_lm
    from pipeline.lm.paced import is_scripted, scripted_lm
    from pipeline.lm.plain_adapter import adapter_for

    if is_scripted(name):
        return JudgeLM(scripted_lm(name), dspy.ChatAdapter(), name)
    lm = make_lm(name, max_tokens=JUDGE_MAX_TOKENS, dtype=dtype)
    return JudgeLM(lm, adapter_for(name) or dspy.ChatAdapter(), name)


def judge_inputs(name: str, trace: ServedTrace) -> dict[str, Any] | None:
    """What judge `name` reads from the trace, or None when the trace does not hold it (or a guard blocked the
    answer: a refusal is the guard's verdict, not an answer to judge)."""
    if trace.blocked or not trace.answer.strip():
        return None
    if name == "answer_relevance":
        return {"question": trace.question, "answer": trace.answer} if trace.question else None
    if name == "faithfulness":
        return {"answer": trace.answer, "context": trace.contexts} if trace.contexts else None
    raise ValueError(f"{name!r} is not a judge that needs no ground truth; those are {', '.join(JUDGED)}.")


def run_judge(name: str, trace: ServedTrace, judge_lm: JudgeLM) -> dspy.Prediction | None:
    """Judge `name`'s score and feedback on the trace, None when not applicable; the judge LM's errors propagate."""
    inputs = judge_inputs(name, trace)
    if inputs is None:
        return None
    with dspy.context(lm=judge_lm.lm, adapter=judge_lm.adapter):
        return make_judge(name)(**inputs)


def measured(trace: ServedTrace, prices: Any | None = None) -> dict[str, float]:
    """The CODE checks of a trace: groundedness, guard_passed, latency_ms and (with `prices`, a
    pipeline.serving.keys.Prices) cost_usd; each only where the trace holds what it needs."""
    from guardrails.output import GroundednessGuard

    values: dict[str, float] = {"guard_passed": 0.0 if trace.blocked else 1.0}
    if trace.groundedness is not None:
        values["groundedness"] = trace.groundedness
    elif trace.contexts and not trace.blocked:
        values["groundedness"] = GroundednessGuard().score(trace.answer, trace.contexts)
    if trace.latency_ms is not None:
        values["latency_ms"] = trace.latency_ms
    cost = prices.cost(trace.prompt_tokens, trace.completion_tokens) if prices is not None else None
    if cost is not None:
        values["cost_usd"] = cost
    return values


def logged_scores(trace: ServedTrace) -> dict[str, float]:
    """The check values already logged on the trace (by an earlier monitor run), newest of each."""
    found: dict[str, float] = {}
    for name in CHECKS:
        item = trace.latest(name, "LLM_JUDGE" if name in JUDGED else "CODE")
        value = getattr(item, "value", None) if item is not None else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            found[name] = float(value)
    return found


def log_scores(trace_id: str, scores: Mapping[str, float], judge_lm: JudgeLM | None, rationales: Mapping[str, str],
               errors: Mapping[str, str]) -> None:
    """Scores (and judge failures, as assessments with an error) on trace `trace_id`."""
    import mlflow
    from mlflow.entities import AssessmentError, AssessmentSource

    judge_source = AssessmentSource(source_type="LLM_JUDGE", source_id=judge_lm.name if judge_lm else "judge")
    code_source = AssessmentSource(source_type="CODE", source_id=CODE_SOURCE_ID)
    for name, value in scores.items():
        mlflow.log_feedback(trace_id=trace_id, name=name, value=float(value), rationale=rationales.get(name) or None,
                            source=judge_source if name in JUDGED else code_source)
    for name, message in errors.items():
        mlflow.log_feedback(trace_id=trace_id, name=name, source=judge_source,
                            error=AssessmentError(error_code="JUDGE_FAILED", error_message=message[:1000]))
