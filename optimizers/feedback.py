"""A person's verdict on a served answer, recorded on its MLflow trace (source HUMAN, source id = the reviewer).

The rating is `human_rating`, True for a good answer (thumbs up, `--rating 1`) and False for a bad one (thumbs
down, `--rating 0`); a comment is the rating's rationale. A corrected answer is the trace's `expected_response`
expectation (the name MLflow's correctness scorers read) and, unless a rating is given, rates the answer bad:
an answer someone had to correct was not right. Judge calibration (optimizers/calibration.py) reads these labels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

RATING = "human_rating"
CORRECT_ANSWER = "expected_response"
HUMAN = "HUMAN"
MAX_TEXT = 10_000


@dataclass(frozen=True)
class RecordedFeedback:
    trace_id: str
    reviewer: str
    rating: bool
    comment: str | None
    correct_answer: str | None


def record_feedback(
    trace_id: str,
    *,
    reviewer: str,
    rating: bool | None = None,
    comment: str | None = None,
    correct_answer: str | None = None,
) -> RecordedFeedback:
    """Record a rating (and comment, corrected answer) on served trace `trace_id`. Everything is checked before
    anything is written: an unknown trace id raises TraceNotFoundError, bad input ConfigError."""
    import mlflow
    from mlflow.entities import AssessmentSource

    from optimizers.served_traces import get_served_trace

    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise ConfigError("Feedback needs a reviewer name: pass --reviewer NAME (or set USER).")
    comment = _text(comment, "comment")
    correct_answer = _text(correct_answer, "corrected answer")
    if rating is None and correct_answer is None:
        raise ConfigError("Give a rating (1: good answer, 0: bad answer) or a corrected answer.")
    trace = get_served_trace(trace_id)
    rating = False if rating is None else bool(rating)
    source = AssessmentSource(source_type=HUMAN, source_id=reviewer)
    mlflow.log_feedback(trace_id=trace.trace_id, name=RATING, value=rating, rationale=comment, source=source)
    if correct_answer is not None:
        mlflow.log_expectation(trace_id=trace.trace_id, name=CORRECT_ANSWER, value=correct_answer, source=source)
    log.info("recorded %s feedback by %s on %s", "good" if rating else "bad", reviewer, trace.trace_id)
    return RecordedFeedback(trace.trace_id, reviewer, rating, comment, correct_answer)


def parse_rating(text: str) -> bool:
    """A rating as typed: 1, +1, up, good, yes -> True; 0, -1, down, bad, no -> False; ConfigError otherwise."""
    value = text.strip().lower()
    if value in ("1", "+1", "up", "good", "yes", "true"):
        return True
    if value in ("0", "-1", "down", "bad", "no", "false"):
        return False
    raise ConfigError(f"Rating {text!r} is not one of 1 (good answer) or 0 (bad answer); -1 is read as 0.")


def human_rating(trace) -> bool | None:
    """The newest human rating on a ServedTrace, None when nobody rated it."""
    found = trace.latest(RATING, HUMAN)
    return bool(found.value) if found is not None and isinstance(found.value, (bool, int)) else None


def _text(value: str | None, what: str) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value) > MAX_TEXT:
        raise ConfigError(f"The {what} has {len(value):,} characters; keep it under {MAX_TEXT:,}.")
    return value.strip()
