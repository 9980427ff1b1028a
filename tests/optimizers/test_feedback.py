"""Human feedback on served answers: recorded on the request's trace (source HUMAN), read back as the trace's
rating; bad input (an unknown trace id, a trace that is no served request, no rating) writes nothing."""

import mlflow
import pytest

from optimizers.feedback import CORRECT_ANSWER, RATING, human_rating, parse_rating, record_feedback
from optimizers.served_traces import find_served_traces, get_served_trace
from pipeline.errors import ConfigError, TraceNotFoundError
from tests.optimizers.served_requests import assessments, served_requests
from tests.pipeline.serving.tessera_models import ADMIN_ANSWER, ADMIN_QUESTION, VAULT_QUESTION


@pytest.fixture
def served(tmp_path_factory):
    return served_requests(tmp_path_factory)


def test_a_served_trace_reads_back_question_answer_citations_guards_and_usage(served):
    admin, vault = served.ask(ADMIN_QUESTION, VAULT_QUESTION)

    traces = find_served_traces(experiment_ids=[served.experiment_id])
    assert [trace.trace_id for trace in traces] == [vault, admin]  # newest first
    answered = get_served_trace(admin)
    assert (answered.question, answered.answer, answered.blocked) == (ADMIN_QUESTION, ADMIN_ANSWER, False)
    assert answered.sources[0] == "admin.md" and len(answered.citations) == len(answered.contexts) >= 1
    assert ADMIN_ANSWER in answered.contexts[0] and answered.groundedness == 1.0
    assert (answered.prompt_tokens, answered.completion_tokens) == (10, 5) and answered.latency_ms > 0
    refused = get_served_trace(vault)
    assert refused.blocked and refused.citations == [] and refused.contexts == []
    assert any(v.guard == "deny_list" and not v.allowed for v in refused.verdicts)


def test_a_rating_comment_and_corrected_answer_are_recorded_as_the_reviewers(served):
    [trace_id] = served.ask(ADMIN_QUESTION)

    recorded = record_feedback(trace_id, reviewer="alice", rating=False, comment="wrong port",
                               correct_answer="8443")

    by_name = {item.name: item for item in assessments(trace_id)}
    rating, expected = by_name[RATING], by_name[CORRECT_ANSWER]
    assert rating.value is False and rating.rationale == "wrong port"
    assert (rating.source.source_type, rating.source.source_id) == ("HUMAN", "alice")
    assert expected.value == "8443" and expected.source.source_id == "alice"
    assert recorded.rating is False and human_rating(get_served_trace(trace_id)) is False


def test_the_newest_rating_wins_and_a_corrected_answer_alone_rates_the_answer_bad(served):
    first, second = served.ask(ADMIN_QUESTION, ADMIN_QUESTION)

    record_feedback(first, reviewer="alice", rating=False)
    record_feedback(first, reviewer="bob", rating=True)
    record_feedback(second, reviewer="alice", correct_answer="Port 8443.")

    assert human_rating(get_served_trace(first)) is True
    assert human_rating(get_served_trace(second)) is False


def test_feedback_on_an_unknown_trace_id_is_a_clear_error_and_writes_nothing(served):
    [trace_id] = served.ask(ADMIN_QUESTION)

    with pytest.raises(TraceNotFoundError, match="No trace 'tr-0000' in the tracking store") as caught:
        record_feedback("tr-0000", reviewer="alice", rating=True, comment="fine")

    assert "scripts/review.py" in str(caught.value)
    assert all(not trace.assessments for trace in find_served_traces(experiment_ids=[served.experiment_id]))
    assert assessments(trace_id) == []


def test_a_trace_that_is_not_a_served_request_is_refused(served):
    mlflow.tracing.enable()
    try:
        with mlflow.start_span(name="notebook-experiment"):
            pass
    finally:
        mlflow.tracing.disable()
    other = mlflow.get_last_active_trace_id()

    with pytest.raises(TraceNotFoundError, match="is not a served request"):
        record_feedback(other, reviewer="alice", rating=True)
    assert assessments(other) == []


@pytest.mark.parametrize(("reviewer", "rating", "answer", "problem"), [
    ("alice", None, None, "Give a rating"),
    ("  ", True, None, "needs a reviewer name"),
    ("alice", True, "x" * 10_001, "keep it under 10,000"),
])
def test_incomplete_feedback_is_refused_before_the_trace_is_read(reviewer, rating, answer, problem):
    with pytest.raises(ConfigError, match=problem):
        record_feedback("tr-not-looked-up", reviewer=reviewer, rating=rating, correct_answer=answer)


def test_ratings_are_read_as_typed():
    assert [parse_rating(text) for text in ("1", "+1", "up", "0", "-1", "down")] == [True] * 3 + [False] * 3
    with pytest.raises(ConfigError, match="not one of 1 .good answer. or 0"):
        parse_rating("5")
