"""One configurable metric for every optimizer: a weighted mean of deterministic metrics and LLM judges.

For GEPA it returns `dspy.Prediction(score=…, feedback=…)`, the feedback built from each judge's text, so the
reflection LM learns why an answer scored as it did.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import dspy

from optimizers.judges import JUDGES, make_judge
from optimizers.metrics.agent import AGENT_METRICS
from optimizers.metrics.answer import METRICS as ANSWER_METRICS

# Every deterministic metric an objective may weigh: the QA metrics and the agent's scores (not its step count).
METRICS = {**ANSWER_METRICS, **{name: metric for name, metric in AGENT_METRICS.items() if name != "steps_used"}}


class WeightedMetric:
    """`metric(example, pred, trace=None) -> float` (or a Prediction with feedback) over named components.

    Scoring: 1. each deterministic metric scores the prediction against the example; 2. each judge runs on the
    judge LM with the inputs its signature needs (question, answer, retrieved context, gold answer); 3. the
    score is the weight-normalised mean, in [0, 1]. With `feedback=True` the result carries every component's
    score and every judge's feedback.
    """

    def __init__(self, weights: Mapping[str, float], *, judge_lm: dspy.BaseLM | None = None, feedback: bool = False) -> None:
        if not weights:
            raise ValueError(f"Give at least one metric or judge. Valid names: {', '.join([*METRICS, *JUDGES])}.")
        unknown = [name for name in weights if name not in METRICS and name not in JUDGES]
        if unknown:
            raise ValueError(
                f"Unknown metric or judge {', '.join(map(repr, unknown))}. "
                f"Metrics: {', '.join(METRICS)}. Judges: {', '.join(JUDGES)}."
            )
        if any(weight <= 0 for weight in weights.values()):
            raise ValueError("Metric weights must be positive; drop a component instead of giving it weight 0.")
        self.weights = dict(weights)
        self.judges = {name: make_judge(name) for name in weights if name in JUDGES}
        self.judge_lm = judge_lm
        self.feedback = feedback

    def __call__(self, example, pred, trace=None, pred_name=None, pred_trace=None):
        score, scores, notes = self.components(example, pred)
        if not self.feedback:
            return score
        summary = ", ".join(f"{name} {value:.2f}" for name, value in scores.items())
        return dspy.Prediction(score=score, feedback="\n".join([f"Scores: {summary}.", *notes]))

    def components(self, example, pred) -> tuple[float, dict[str, float], list[str]]:
        """The weighted score, each component's score, and each judge's feedback."""
        scores: dict[str, float] = {}
        notes: list[str] = []
        for name in self.weights:
            if name in METRICS:
                scores[name] = float(METRICS[name](example, pred))
                continue
            judge = self.judges[name]
            inputs = _judge_inputs(example, pred)
            needed = {field: inputs[field] for field in judge.signature.input_fields}
            with dspy.context(lm=self.judge_lm) if self.judge_lm is not None else contextlib.nullcontext():
                verdict = judge(**needed)
            scores[name] = float(verdict.score)
            notes.append(f"{name}: {verdict.feedback}")
        total = sum(self.weights.values())
        return sum(self.weights[name] * scores[name] for name in scores) / total, scores, notes

    def describe(self) -> str:
        return " + ".join(f"{weight:g}·{name}" for name, weight in self.weights.items())


def _judge_inputs(example, pred) -> dict[str, str]:
    contexts = getattr(pred, "contexts", None) or []
    return {
        "question": example.question,
        "answer": pred.answer,
        "context": "\n\n".join(contexts) or "(no context was retrieved)",
        "gold_answer": example.answer,
    }
