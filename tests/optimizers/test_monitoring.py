"""Online monitoring of served answers: the no-ground-truth checks logged back on each trace (LLM_JUDGE and
CODE sources), drift against the previous window, scores read back rather than judged twice, a judge LM that fails
on some answers (marked, counted, the job finishes), and an empty window."""

import time

import pytest

from optimizers.monitoring import format_report, monitor
from optimizers.served_traces import now_ms
from optimizers.trace_checks import CODE_SOURCE_ID
from pipeline.serving.keys import Prices
from tests.optimizers.served_requests import assessments, scripted_judge, served_requests
from tests.pipeline.serving.tessera_models import VAULT_QUESTION

EARLIER = ["Which port does the admin API listen on?", "On which port is the admin API?", "What port is the admin API?"]
HOUR = 3_600_000  # the previous window: long enough to hold the earlier answers however long serving took
LATER = ["Lately, which admin port?", "Lately, the admin API port?", "Lately, admin API port number?"]


@pytest.fixture
def served(tmp_path_factory):
    return served_requests(tmp_path_factory)


def relevance_drops_lately(prompt: str) -> str:
    if "[[ ## question ## ]]" in prompt:
        return "0.2" if "Lately" in prompt else "0.9"
    return "1.0"


def two_windows(served):
    """Three answers, then (after the boundary) three more and a blocked one: (boundary, end) in epoch ms."""
    earlier = served.ask(*EARLIER)
    time.sleep(0.05)
    boundary = now_ms()
    time.sleep(0.05)
    later = served.ask(*LATER, VAULT_QUESTION)
    return earlier, later, boundary, now_ms() + 1


def test_checks_are_logged_on_each_trace_and_relevance_drift_is_seen(served):
    earlier, later, boundary, end = two_windows(served)
    judge = scripted_judge(relevance_drops_lately)

    report = monitor(judge, since_ms=end - boundary, until_ms=end, window_ms=HOUR, prices=Prices(1.0, 2.0),
                     experiment_ids=[served.experiment_id])

    assert [s.trace.trace_id for s in report.current] == later[::-1] and len(report.previous) == 3
    logged = {item.name: item for item in assessments(later[0])}
    assert logged["answer_relevance"].value == 0.2 and logged["faithfulness"].value == 1.0
    assert logged["answer_relevance"].source.source_type == "LLM_JUDGE"
    assert logged["answer_relevance"].source.source_id == "scripted-judge"
    assert logged["groundedness"].value == 1.0 and logged["guard_passed"].value == 1.0
    assert logged["groundedness"].source.source_id == CODE_SOURCE_ID and logged["latency_ms"].value > 0
    assert logged["cost_usd"].value == 0.02  # 10 prompt tokens at $1 and 5 completion tokens at $2 per 1,000
    blocked = {item.name: item.value for item in assessments(later[-1])}
    assert blocked["guard_passed"] == 0.0 and "answer_relevance" not in blocked and "faithfulness" not in blocked
    drift = {d.check: d for d in report.drift}
    assert drift["answer_relevance"].previous == 0.9 and drift["answer_relevance"].current == pytest.approx(0.2)
    assert drift["answer_relevance"].verdict == "down" and drift["faithfulness"].verdict == "no clear change"
    assert drift["guard_passed"].current == 0.75 and drift["guard_passed"].previous == 1.0
    text = format_report(report)
    [day] = report.days
    assert day.traces == 7 and text.splitlines()[1].split()[:4] == [day.day, "7", "0", "0.550"]
    assert "answer_relevance" in text and "down" in text and report.failed == 0


def test_a_second_run_reads_the_logged_scores_back_instead_of_judging_again(served):
    _, later, boundary, end = two_windows(served)
    judge = scripted_judge(relevance_drops_lately)
    first = monitor(judge, since_ms=end - boundary, until_ms=end, window_ms=HOUR, experiment_ids=[served.experiment_id])
    logged = len(assessments(later[0]))

    again = monitor(judge, since_ms=end - boundary, until_ms=end, window_ms=HOUR, experiment_ids=[served.experiment_id])

    assert first.judge_calls == 12 and again.judge_calls == 0
    assert len(assessments(later[0])) == logged
    assert [d.current for d in again.drift] == [d.current for d in first.drift]


def test_a_judge_lm_that_fails_on_some_answers_marks_them_failed_and_the_job_finishes(served):
    _, later, boundary, end = two_windows(served)

    def flaky(prompt: str) -> str:
        if "[[ ## question ## ]]" in prompt and "admin API port?" in prompt:
            raise TimeoutError("judge LM timed out")
        return relevance_drops_lately(prompt)

    report = monitor(scripted_judge(flaky), since_ms=end - boundary, until_ms=end, window_ms=HOUR, sample=10,
                     experiment_ids=[served.experiment_id])

    failed = [s for s in report.current if s.failed]
    assert [s.failed for s in failed] == [["answer_relevance"]] and report.failed == 1
    logged = {item.name: item for item in assessments(failed[0].trace.trace_id)}
    assert logged["answer_relevance"].error.error_code == "JUDGE_FAILED"
    assert "judge LM timed out" in logged["answer_relevance"].error.error_message
    assert logged["faithfulness"].value == 1.0 and logged["guard_passed"].value == 1.0
    assert "1 trace(s) failed a judge (answer_relevance 1)" in format_report(report)

    retried = monitor(scripted_judge(relevance_drops_lately), since_ms=end - boundary, until_ms=end, window_ms=HOUR,
                      experiment_ids=[served.experiment_id])
    assert retried.failed == 0 and retried.judge_calls == 1


def test_a_sample_scores_at_most_n_traces_of_each_window(served):
    _, _, boundary, end = two_windows(served)

    report = monitor(scripted_judge(relevance_drops_lately), since_ms=end - boundary, until_ms=end, window_ms=HOUR,
                     sample=2, experiment_ids=[served.experiment_id])

    assert len(report.current) == 2 and len(report.previous) == 2


def test_an_empty_window_says_so(served):
    served.ask(EARLIER[0])
    long_ago = now_ms() - 30 * 86_400_000

    report = monitor(scripted_judge(relevance_drops_lately), since_ms=3_600_000, until_ms=long_ago,
                     experiment_ids=[served.experiment_id])

    assert report.current == [] and report.previous == []
    assert format_report(report).startswith("No served traces between ")
