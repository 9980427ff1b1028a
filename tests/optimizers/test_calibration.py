"""Judge calibration against human ratings of served answers: Cohen's kappa, accuracy and counts per judge, which
judges are trusted, too few labels said as such, and a judge LM that fails on some answers (counted, job goes on)."""

import pytest

from optimizers.calibration import JudgeAgreement, calibrate_judges, format_calibration
from optimizers.feedback import record_feedback
from tests.optimizers.served_requests import scripted_judge, served_requests
from tests.pipeline.serving.tessera_models import VAULT_QUESTION

GOOD = ["Which port does the admin API listen on?", "On which port is the admin API?", "What port has the admin API?"]
BAD = ["Does the admin API need a certificate?", "Is a client certificate needed for admin?", "Admin API certificate?"]


@pytest.fixture
def served(tmp_path_factory):
    return served_requests(tmp_path_factory)


def relevance_by_question(prompt: str) -> str:
    # The relevance judge sees the question: it agrees with the reviewer on every answer.
    return "0.9" if "port" in prompt.split("[[ ## answer ## ]]")[0] else "0.1"


def rated_answers(served):
    ids = served.ask(*GOOD, *BAD, VAULT_QUESTION)
    for trace_id in ids[:3]:
        record_feedback(trace_id, reviewer="alice", rating=True)
    for trace_id in ids[3:]:  # the blocked vault answer is rated bad too
        record_feedback(trace_id, reviewer="alice", rating=False)
    served.ask(GOOD[0])  # not rated: left out


def test_a_judge_that_agrees_with_the_reviewers_is_trusted_and_one_that_passes_everything_is_not(served):
    rated_answers(served)
    faithfulness_calls = []

    def score(prompt: str) -> str:
        if "[[ ## question ## ]]" in prompt:
            return relevance_by_question(prompt)
        faithfulness_calls.append(prompt)
        return "1.0"  # faithfulness passes every answer: the admin answer is word for word in its passage

    calibration = calibrate_judges(scripted_judge(score), experiment_ids=[served.experiment_id], min_labels=6)

    relevance, faithfulness = calibration.agreements
    assert calibration.rated == 7
    assert (relevance.judge, relevance.compared, relevance.not_applicable) == ("answer_relevance", 6, 1)
    assert (relevance.good_good, relevance.bad_bad, relevance.accuracy, relevance.kappa) == (3, 3, 1.0, 1.0)
    assert relevance.trusted and "trusted (kappa 1.00 >= 0.60)" in relevance.verdict
    assert (faithfulness.judge_good_human_bad, faithfulness.good_good, faithfulness.kappa) == (3, 3, 0.0)
    assert not faithfulness.trusted and "not trusted" in faithfulness.verdict and len(faithfulness_calls) == 6
    report = format_calibration(calibration)
    assert "7 rated answer(s)" in report and "kappa >= 0.60" in report


def test_with_the_default_threshold_six_labels_are_too_few_to_trust_any_judge(served):
    rated_answers(served)

    calibration = calibrate_judges(scripted_judge(relevance_by_question), experiment_ids=[served.experiment_id])

    assert [a.trusted for a in calibration.agreements] == [False, False]
    assert all("too few labels (6 < 20)" in a.verdict for a in calibration.agreements)


def test_a_judge_lm_that_fails_on_some_answers_counts_them_and_finishes(served):
    rated_answers(served)
    calls = {"n": 0}

    def flaky(prompt: str) -> str:
        calls["n"] += 1
        if "[[ ## question ## ]]" not in prompt and calls["n"] % 2 == 0:
            raise ConnectionError("judge endpoint dropped the connection")
        return relevance_by_question(prompt) if "[[ ## question ## ]]" in prompt else "1.0"

    calibration = calibrate_judges(scripted_judge(flaky), experiment_ids=[served.experiment_id], min_labels=6)

    relevance, faithfulness = calibration.agreements
    assert relevance.failed == 0 and relevance.compared == 6
    assert faithfulness.failed > 0 and faithfulness.compared + faithfulness.failed == 6
    assert calibration.failed == faithfulness.failed
    assert f"{faithfulness.failed} judge call(s) failed" in format_calibration(calibration)


def test_no_rated_answers_says_what_to_do(served):
    served.ask(GOOD[0])

    calibration = calibrate_judges(scripted_judge(relevance_by_question), experiment_ids=[served.experiment_id])

    assert calibration.rated == 0 and all(a.compared == 0 and a.kappa is None for a in calibration.agreements)
    assert "No served answer has a human rating yet" in format_calibration(calibration)


@pytest.mark.parametrize(("counts", "kappa"), [
    ((40, 40, 10, 10), 0.6),       # 80% agreement, 50% by chance
    ((45, 5, 5, 45), 0.0),         # half agree, which the base rates (50% and 90% good) give by chance
    ((0, 0, 50, 50), -1.0),        # they never agree: below chance
    ((10, 0, 0, 0), None),         # both raters said "good" throughout: kappa undefined
])
def test_cohens_kappa_is_agreement_beyond_chance(counts, kappa):
    good_good, bad_bad, judge_good_human_bad, judge_bad_human_good = counts
    agreement = JudgeAgreement("j", good_good, bad_bad, judge_good_human_bad, judge_bad_human_good)
    assert agreement.kappa == (pytest.approx(kappa) if kappa is not None else None)
