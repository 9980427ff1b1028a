"""The weighted metric: deterministic parts, judges on their own LM, and GEPA-style feedback."""

import dspy
import pytest
from dspy.utils import DummyLM

from optimizers.metrics.composite import WeightedMetric

EXAMPLE = dspy.Example(question="Admin port?", answer="9180", sources=["ports.md"]).with_inputs("question")
PRED = dspy.Prediction(answer="9180", contexts=["The admin API listens on port 9180."], hits=[])


def test_weighted_mean_of_deterministic_metrics():
    metric = WeightedMetric({"exact_match": 3, "token_f1": 1})
    assert metric(EXAMPLE, PRED) == 1.0
    wrong = dspy.Prediction(answer="8443", contexts=[], hits=[])
    assert metric(EXAMPLE, wrong) == 0.0


def test_judges_run_on_the_judge_lm_and_their_feedback_reaches_gepa():
    judge_lm = DummyLM([{"score": "0.5", "feedback": "The answer omits where the port is set."}])
    metric = WeightedMetric({"exact_match": 1, "faithfulness": 1}, judge_lm=judge_lm, feedback=True)
    result = metric(EXAMPLE, PRED)
    assert result.score == pytest.approx(0.75)
    assert "faithfulness 0.50" in result.feedback and "omits where the port is set" in result.feedback
    assert len(judge_lm.history) == 1


def test_bad_composition_names_the_valid_parts():
    with pytest.raises(ValueError, match="Judges: faithfulness"):
        WeightedMetric({"vibes": 1})
    with pytest.raises(ValueError, match="positive"):
        WeightedMetric({"token_f1": 0})
