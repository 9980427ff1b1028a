"""scripts/feedback.py, scripts/monitor.py and scripts/evaluate.py --calibrate-judges as their command lines run
them: what they print, and exit 2 with a clear message on bad input (an unknown trace id, a bad rating)."""

import uuid

import mlflow
import pytest

from optimizers.feedback import RATING
from tests.optimizers.served_requests import assessments, served_requests
from tests.pipeline.serving.tessera_models import ADMIN_QUESTION


@pytest.fixture
def script(script, monkeypatch, mlflow_in_a_temporary_store):
    """The shared in-process script runner (tests/scripts/conftest.py), against the test store as one reviewer."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_in_a_temporary_store)
    monkeypatch.setenv("USER", "cli-reviewer")
    return script


def test_feedback_records_a_rating_with_a_corrected_answer_as_the_user(script, tmp_path_factory):
    [trace_id] = served_requests(tmp_path_factory).ask(ADMIN_QUESTION)

    code, out, _ = script("feedback.py", trace_id, "--rating", "-1", "--comment", "wrong port",
                          "--correct-answer", "8443")

    assert code == 0 and out.strip() == f"recorded: bad (0) with a corrected answer by cli-reviewer on {trace_id}"
    [rating] = [item for item in assessments(trace_id) if item.name == RATING]
    assert rating.value is False and rating.source.source_id == "cli-reviewer" and rating.rationale == "wrong port"


def test_feedback_on_an_unknown_trace_id_or_with_a_bad_rating_exits_2_and_writes_nothing(script, tmp_path_factory):
    [trace_id] = served_requests(tmp_path_factory).ask(ADMIN_QUESTION)

    unknown = script("feedback.py", "tr-does-not-exist", "--rating", "1")
    bad_rating = script("feedback.py", trace_id, "--rating", "5")

    assert unknown[0] == 2 and unknown[2].startswith("error: No trace 'tr-does-not-exist' in the tracking store")
    assert "Traceback" not in unknown[2]
    assert bad_rating[0] == 2 and "is not one of 1 (good answer) or 0" in bad_rating[2]
    assert assessments(trace_id) == []


def test_monitor_prints_the_day_table_and_an_empty_window_says_so(script, tmp_path_factory):
    served = served_requests(tmp_path_factory)
    served.ask(ADMIN_QUESTION, ADMIN_QUESTION)
    name = mlflow.get_experiment(served.experiment_id).name
    empty = f"empty-{uuid.uuid4().hex[:8]}"
    mlflow.create_experiment(empty)

    code, out, _ = script("monitor.py", "--since", "1h", "--judge-lm", "scripted/0", "--experiment", name)
    quiet = script("monitor.py", "--since", "1h", "--judge-lm", "scripted/0", "--experiment", empty)
    unknown = script("monitor.py", "--experiment", "no-such-experiment")
    bad = script("monitor.py", "--since", "soon")

    header, today = out.splitlines()[:2]
    assert code == 0 and header.split()[:5] == ["day", "(UTC)", "traces", "failed", "answer_relevance"]
    assert today.split()[1:5] == ["2", "0", "0.500", "0.500"]  # the scripted judge scores 0.5
    assert "drift: 2 traces since" in out
    assert quiet[0] == 0 and quiet[1].startswith("No served traces between")
    assert unknown[0] == 2 and "No experiment 'no-such-experiment'" in unknown[2]
    assert bad[0] == 2 and "Duration 'soon' is not a positive number with a unit" in bad[2]


def test_calibrate_judges_without_ratings_says_how_to_get_them(script, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'fresh.db'}")  # a store nobody rated in yet

    code, out, _ = script("evaluate.py", "--calibrate-judges")

    assert code == 0 and "No served answer has a human rating yet" in out
