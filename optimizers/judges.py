"""LLM judges: dspy.Modules that grade one aspect of an answer with a score in [0, 1] and feedback.

Judges run on whatever LM is in context; a caller picks the judging LM with
`with dspy.context(lm=judge_lm): judge(...)`. The feedback is meant for GEPA's reflection.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import dspy

from signatures import (
    JudgeAnswerRelevance,
    JudgeContextSufficiency,
    JudgeCorrectness,
    JudgeFaithfulness,
    JudgeSafety,
)

logger = logging.getLogger(__name__)

# A number, optionally followed by "%" or "/ denominator": "0.8", "8/10", "80 %".
_NUMBER = re.compile(r"(-?\d+(?:\.\d+)?)\s*(%|/\s*(\d+(?:\.\d+)?))?")
_VERDICT = re.compile(r"^\W*(yes|true|no|false)\b", flags=re.IGNORECASE)


@dataclass(frozen=True)
class Judgement:
    """A judge's verdict: `score` in [0, 1], higher is better, and `feedback` saying why."""

    score: float
    feedback: str

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"A judgement's score must lie in [0, 1], got {self.score}.")


def read_score(raw: object) -> float | None:
    """The score in `raw` clamped to [0, 1], or None when no score can be read.

    Reads the first number ("0.8"; "8/10" and "80%" as fractions), else a leading yes/true (1.0)
    or no/false (0.0).
    """
    text = str(raw).strip()
    match = _NUMBER.search(text)
    if match:
        value = float(match.group(1))
        if match.group(2) == "%":
            value /= 100
        elif match.group(3) is not None:
            denominator = float(match.group(3))
            if denominator == 0:
                return None
            value /= denominator
        return min(1.0, max(0.0, value)) if math.isfinite(value) else None
    verdict = _VERDICT.match(text)
    if verdict:
        return 1.0 if verdict.group(1).lower() in ("yes", "true") else 0.0
    return None


def read_judgement(raw_score: object, feedback: object) -> Judgement:
    """A Judgement from a judge LM's raw outputs; an unreadable score becomes 0.0 and says so."""
    feedback_text = "" if feedback is None else str(feedback).strip()
    score = read_score(raw_score)
    if score is None:
        logger.warning("Judge output could not be read as a score: %r", raw_score)
        note = f"The judge output could not be read as a score: {str(raw_score)!r}; scored 0.0."
        return Judgement(0.0, f"{note} {feedback_text}".strip())
    return Judgement(score, feedback_text)


class Judge(dspy.Module):
    """Base judge: checks inputs, asks the LM in context, reads the score leniently.

    Subclasses set `signature` (from `signatures/`), `needs_gold` and `needs_context`, and define
    `forward` with explicit keyword arguments that calls `self.evaluate(...)`.
    """

    signature: ClassVar[type[dspy.Signature]]
    needs_gold: ClassVar[bool] = False
    needs_context: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        # Read the score as text: a float field would make the adapter reject "8/10" or "yes"
        # before the lenient reading below could see it.
        self.judge = dspy.Predict(self.signature.with_updated_fields("score", type_=str))

    def evaluate(self, **inputs: object) -> dspy.Prediction:
        prepared = {name: self._checked(name, value) for name, value in inputs.items()}
        raw = self.judge(**prepared)
        judgement = read_judgement(raw.get("score"), raw.get("feedback"))
        return dspy.Prediction(score=judgement.score, feedback=judgement.feedback)

    def _checked(self, name: str, value: object) -> str:
        if isinstance(value, Sequence) and not isinstance(value, str):
            value = "\n".join(str(item) for item in value)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(
                f"{type(self).__name__} needs a non-empty `{name}` (a string); got {value!r}. "
                f"It judges from: {', '.join(self.signature.input_fields)}."
            )
        return value


class Faithfulness(Judge):
    """Is every claim in the answer supported by the retrieved context?

    Scoring:
      1. the LM lists the claims the answer makes;
      2. it marks each claim supported or not by the context;
      3. score = share of supported claims; feedback names the unsupported ones.

    Needs `answer` and `context` (a string or a list of passages); no gold answer.
    """

    signature = JudgeFaithfulness
    needs_context = True

    def forward(self, answer: str, context: str | Sequence[str]) -> dspy.Prediction:
        return self.evaluate(context=context, answer=answer)


class AnswerRelevance(Judge):
    """Does the answer address the question that was asked?

    Scoring:
      1. the LM compares what the question asks with what the answer says;
      2. score 1 for a direct, complete reply, 0 for an off-topic one, partial in between;
      3. feedback names what is left unanswered or beside the point.

    Needs `question` and `answer`.
    """

    signature = JudgeAnswerRelevance

    def forward(self, question: str, answer: str) -> dspy.Prediction:
        return self.evaluate(question=question, answer=answer)


class Correctness(Judge):
    """Does the answer state the same facts as the gold answer?

    Scoring:
      1. the LM lists the facts of the gold answer;
      2. it checks each against the answer (stated, missing or contradicted);
      3. score 1 when all are stated, partial credit for some, 0 when contradicted or missing;
         feedback names the wrong or missing facts.

    Needs `question`, `answer` and `gold_answer`.
    """

    signature = JudgeCorrectness
    needs_gold = True

    def forward(self, question: str, answer: str, gold_answer: str) -> dspy.Prediction:
        return self.evaluate(question=question, gold_answer=gold_answer, answer=answer)


class ContextSufficiency(Judge):
    """Does the retrieved context hold the facts needed for the gold answer? (Judges retrieval.)

    Scoring:
      1. the LM lists the facts the gold answer rests on;
      2. it checks whether the context states each one;
      3. score = share of those facts present; feedback names the missing ones.

    Needs `question`, `context` (a string or a list of passages) and `gold_answer`.
    """

    signature = JudgeContextSufficiency
    needs_gold = True
    needs_context = True

    def forward(self, question: str, context: str | Sequence[str], gold_answer: str) -> dspy.Prediction:
        return self.evaluate(question=question, context=context, gold_answer=gold_answer)


class Safety(Judge):
    """Is the answer safe to show: no help to cause harm, no personal data, no secrets?

    Scoring:
      1. the LM looks for harmful instructions, personal data and secrets (keys, passwords);
      2. score 1 for a safe answer, 0 for an unsafe one;
      3. feedback quotes what is unsafe and says why.

    Needs `answer` only.
    """

    signature = JudgeSafety

    def forward(self, answer: str) -> dspy.Prediction:
        return self.evaluate(answer=answer)


JUDGES: dict[str, type[Judge]] = {
    "faithfulness": Faithfulness,
    "answer_relevance": AnswerRelevance,
    "correctness": Correctness,
    "context_sufficiency": ContextSufficiency,
    "safety": Safety,
}


def make_judge(name: str) -> Judge:
    """A new judge by name, e.g. `make_judge("faithfulness")`; see `JUDGES` for the names."""
    if name not in JUDGES:
        raise ValueError(f"Unknown judge {name!r}. Valid names: {', '.join(sorted(JUDGES))}.")
    return JUDGES[name]()
