"""One answered example as a flat record (what the served model returns per question, plus what a judge needs),
its scores, and why it failed.

Both engines score the same record with the same code: the local engine builds it from the program's prediction,
the Spark engine receives it from the pyfunc model's output columns. So they agree on every score by construction,
and the project's metrics (`optimizers.metrics`) read the record through `record_prediction`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import dspy

from optimizers.metrics.agent import AGENT_METRICS
from optimizers.metrics.answer import METRICS

# Scored for every RAG example: the answer against the gold answer, the retrieved documents against the gold sources.
ANSWER_METRICS = ("token_f1", "exact_match", "rouge_l")
RETRIEVAL_METRICS = ("recall@5", "mrr", "ndcg@5")
# The agent's scores, not its step count (a count, not a score).
AGENT_SCORES = ("answer_correctness", "tool_selection", "refusals_respected")
# The metric that decides whether an example passed, per program kind.
PRIMARY = {"rag": "token_f1", "agent": "answer_correctness"}
PASS_MARK = 0.5

# Why an example failed, in the order they are checked.
RAISED, REFUSED, RETRIEVAL_MISSED, TOOL_MISSED, GENERATOR_FAILED = (
    "error", "guard_refused", "retrieval_missed", "wrong_tool", "generator_failed")
FAILURE_CLASSES = (RAISED, REFUSED, RETRIEVAL_MISSED, TOOL_MISSED, GENERATOR_FAILED)
FAILURE_TEXT = {
    RAISED: "the program, a metric or a judge raised",
    REFUSED: "a guard refused the question or the answer",
    RETRIEVAL_MISSED: "retrieval missed the gold source",
    TOOL_MISSED: "the agent called other tools than the task needs",
    GENERATOR_FAILED: "the generator failed with the right context in hand",
}


def metric_names(kind: str, *, retriever_only: bool = False) -> tuple[str, ...]:
    if retriever_only:
        return RETRIEVAL_METRICS
    return AGENT_SCORES if kind == "agent" else (*ANSWER_METRICS, *RETRIEVAL_METRICS)


def answer_record(prediction: Any, usage: Mapping[str, dict] | None = None) -> dict[str, Any]:
    """The served model's output row for `prediction` (pipeline.serving.model.output_row), plus the passages'
    texts (for judges) and the tools an agent called."""
    from pipeline.serving.model import output_row

    record = output_row(prediction, usage or {})
    record["contexts"] = [str(text) for text in getattr(prediction, "contexts", None) or []]
    record["tools_called"] = [str(tool) for tool in getattr(prediction, "tools_called", None) or []]
    return record


def retrieval_record(hits: Sequence[Any]) -> dict[str, Any]:
    """A record of retrieval alone: the documents of the passages, best first."""
    return {"answer": "", "citations": [hit.chunk.id for hit in hits], "blocked": False,
            "sources": list(dict.fromkeys(hit.chunk.source for hit in hits)),
            "contexts": [hit.chunk.text for hit in hits], "tools_called": []}


def record_prediction(record: Mapping[str, Any]) -> dspy.Prediction:
    """A prediction the project's metrics and judges can read, rebuilt from a record: one hit per retrieved
    document, in rank order (retrieval metrics count each document once at its first rank, so this loses nothing
    they read)."""
    hits = [SimpleNamespace(chunk=SimpleNamespace(source=str(source))) for source in record.get("sources") or []]
    return dspy.Prediction(
        answer=str(record.get("answer") or ""), blocked=bool(record.get("blocked")), hits=hits,
        contexts=list(record.get("contexts") or []), tools_called=list(record.get("tools_called") or []),
        citations=list(record.get("citations") or []),
    )


def score_record(example: dspy.Example, record: Mapping[str, Any], names: Sequence[str],
                 judges: Mapping[str, dspy.Module] | None = None,
                 judge_lm: dspy.BaseLM | None = None) -> dict[str, float]:
    """Each named metric, then each judge (on `judge_lm`), of one record. A judge that raises raises here: the
    caller marks the example failed."""
    pred = record_prediction(record)
    table = {**METRICS, **AGENT_METRICS}
    scores = {name: float(table[name](example, pred)) for name in names}
    for name, judge in (judges or {}).items():
        inputs = {"question": example.question, "answer": pred.answer, "gold_answer": example.get("answer", ""),
                  "context": "\n\n".join(pred.contexts) or "(no context was retrieved)"}
        with dspy.context(lm=judge_lm) if judge_lm is not None else contextlib.nullcontext():
            verdict = judge(**{field: inputs[field] for field in judge.signature.input_fields})
        scores[name] = float(verdict.score)
    return scores


def failure_class(kind: str, record: Mapping[str, Any], scores: Mapping[str, float], *, error: str = "",
                  gold_sources: Sequence[str] = (), retriever_only: bool = False) -> str:
    """Why an example failed ("" when it passed): it raised; a guard refused it (unless refusing was right);
    retrieval did not bring a gold source; the agent picked the wrong tools; or the generator had the gold source
    in its context and still answered wrong. Retriever-only: failed when no gold source was retrieved."""
    if error:
        return RAISED
    retrieved = bool(set(gold_sources) & set(record.get("sources") or []))
    if retriever_only:
        return "" if retrieved else RETRIEVAL_MISSED
    if scores.get(PRIMARY[kind], 0.0) >= PASS_MARK:
        return ""
    if record.get("blocked"):
        return REFUSED
    if kind == "agent" and scores.get("tool_selection", 1.0) < 1.0:
        return TOOL_MISSED
    if gold_sources and not retrieved:
        return RETRIEVAL_MISSED
    return GENERATOR_FAILED
