"""LLM judges driven by a scripted DummyLM: score reading, feedback, input checks, lookup."""

from __future__ import annotations

import logging

import dspy
import pytest
from dspy.utils import DummyLM

from optimizers.judges import (
    JUDGES,
    AnswerRelevance,
    ContextSufficiency,
    Correctness,
    Faithfulness,
    Judge,
    Judgement,
    Safety,
    make_judge,
    read_judgement,
    read_score,
)
from pipeline.lm.plain_adapter import PlainAdapter

CONTEXT = "[1] The Eiffel Tower is in Paris."
FULL_INPUTS = {
    Faithfulness: {"answer": "It is in Paris.", "context": CONTEXT},
    AnswerRelevance: {"question": "Where is the tower?", "answer": "It is in Paris."},
    Correctness: {"question": "Where is the tower?", "answer": "It is in Paris.", "gold_answer": "Paris"},
    ContextSufficiency: {"question": "Where is the tower?", "context": CONTEXT, "gold_answer": "Paris"},
    Safety: {"answer": "It is in Paris."},
}


def judged(judge: Judge, score: str, feedback: str = "fine", **inputs: object) -> dspy.Prediction:
    lm = DummyLM([{"score": score, "feedback": feedback}])
    with dspy.context(lm=lm):
        return judge(**inputs)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0.8", 0.8),
        ("8/10", 0.8),
        ("80%", 0.8),
        ("Score: 0.5 because half", 0.5),
        ("yes", 1.0),
        ("No.", 0.0),
        ("1.7", 1.0),
        ("-0.3", 0.0),
        ("150%", 1.0),
    ],
)
def test_score_is_read_leniently_and_clamped(raw, expected):
    prediction = judged(Faithfulness(), raw, **FULL_INPUTS[Faithfulness])
    assert prediction.score == pytest.approx(expected)


@pytest.mark.parametrize("raw", ["excellent", "", "3/0"])
def test_unreadable_score_is_zero_with_feedback_saying_so(raw, caplog):
    with caplog.at_level(logging.WARNING, logger="optimizers.judges"):
        prediction = judged(Safety(), raw, feedback="looks safe", answer="It is in Paris.")
    assert prediction.score == 0.0
    assert "could not be read" in prediction.feedback
    assert "looks safe" in prediction.feedback
    assert "could not be read" in caplog.text


@pytest.mark.parametrize("judge_class", list(FULL_INPUTS))
def test_every_judge_returns_score_and_feedback(judge_class):
    prediction = judged(judge_class(), "0.25", "claim 2 is unsupported", **FULL_INPUTS[judge_class])
    assert prediction.score == pytest.approx(0.25)
    assert prediction.feedback == "claim 2 is unsupported"


def test_judge_sends_its_inputs_and_instruction_to_the_lm():
    lm = DummyLM([{"score": "1", "feedback": "ok"}])
    with dspy.context(lm=lm):
        Correctness()(**FULL_INPUTS[Correctness])
    prompt = str(lm.history[-1]["messages"])
    assert "gold answer" in prompt.lower() and "Paris" in prompt and "It is in Paris." in prompt


def test_context_may_be_a_list_of_passages():
    prediction = judged(Faithfulness(), "1", answer="It is in Paris.", context=["[1] Paris.", "[2] Tower."])
    assert prediction.score == 1.0


def test_plain_adapter_output_of_the_embedded_model_is_read():
    judge = Faithfulness()
    raw = PlainAdapter().parse(judge.judge.signature, "Score: 7/10\nFeedback: one claim is unsupported")
    judgement = read_judgement(raw["score"], raw["feedback"])
    assert judgement.score == pytest.approx(0.7)
    assert judgement.feedback == "one claim is unsupported"


@pytest.mark.parametrize(
    ("judge_class", "missing"),
    [
        (Faithfulness, "answer"),
        (Faithfulness, "context"),
        (AnswerRelevance, "question"),
        (Correctness, "gold_answer"),
        (ContextSufficiency, "context"),
        (Safety, "answer"),
    ],
)
def test_missing_input_raises_value_error_naming_it(judge_class, missing):
    inputs = dict(FULL_INPUTS[judge_class], **{missing: "  "})
    lm = DummyLM([])
    with dspy.context(lm=lm), pytest.raises(ValueError, match=f"`{missing}`"):
        judge_class()(**inputs)
    assert lm.history == []


def test_none_input_raises_value_error():
    with pytest.raises(ValueError, match="`context`"):
        Faithfulness()(answer="It is in Paris.", context=None)


def test_needs_flags_match_the_signature_inputs():
    for judge_class in JUDGES.values():
        fields = judge_class.signature.input_fields
        assert judge_class.needs_gold == ("gold_answer" in fields)
        assert judge_class.needs_context == ("context" in fields)


def test_make_judge_builds_each_named_judge():
    for name, judge_class in JUDGES.items():
        assert type(make_judge(name)) is judge_class


def test_make_judge_rejects_unknown_name_listing_valid_ones():
    with pytest.raises(ValueError, match="Unknown judge 'faithful'") as error:
        make_judge("faithful")
    for name in JUDGES:
        assert name in str(error.value)


def test_predictor_is_discoverable_for_optimizers():
    names = [name for name, _ in Faithfulness().named_predictors()]
    assert names == ["judge"]


def test_judgement_rejects_out_of_range_score():
    assert Judgement(0.5, "ok").score == 0.5
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Judgement(1.5, "too high")


def test_read_score_returns_none_for_nonsense():
    assert read_score("n/a") is None
    assert read_score(0.4) == pytest.approx(0.4)
