"""Agent metrics: each scores one thing a user would notice, on an agent task and an agent prediction."""

import dspy
import pytest

from optimizers.metrics.agent import (
    answer_correctness,
    normalise_fact,
    refusals_respected,
    states,
    steps_used,
    tool_selection,
)
from optimizers.metrics.composite import WeightedMetric


def task(tools=(), facts=(), refuse=False):
    return dspy.Example(question="q", answer="a", tools=list(tools), facts=list(facts), refuse=refuse)


def pred(answer="", tools=(), blocked=False, steps=None):
    steps = steps if steps is not None else [{"tool": t, "kind": "call"} for t in tools]
    return dspy.Prediction(answer=answer, tools_called=list(tools), blocked=blocked, steps=steps)


def test_tool_selection_needs_exactly_the_expected_tools_in_any_order():
    two = task(tools=["ticket_status", "search_documents"])
    assert tool_selection(two, pred(tools=["search_documents", "ticket_status"])) == 1.0
    assert tool_selection(two, pred(tools=["search_documents"])) == 0.0
    assert tool_selection(two, pred(tools=["search_documents", "ticket_status", "calculator"])) == 0.0
    assert tool_selection(task(), pred(tools=[])) == 1.0
    assert tool_selection(task(), pred(tools=["calculator"])) == 0.0


def test_answer_correctness_is_the_share_of_facts_stated_with_numbers_read_loosely():
    example = task(facts=["Mei Lin", "resolved"])
    assert answer_correctness(example, pred("Mei Lin is on it; CG-1043 is resolved.")) == 1.0
    assert answer_correctness(example, pred("Mei Lin is on it.")) == 0.5
    assert answer_correctness(task(facts=["7006652"]), pred("It is 7,006,652.")) == 1.0
    assert answer_correctness(task(facts=["7006652"]), pred("It is 7006652.0")) == 1.0
    assert answer_correctness(task(facts=["16"]), pred("Up to 160 issuers.")) == 0.0  # word boundaries
    assert answer_correctness(task(facts=["5 seconds|5s"]), pred("The default is 5s.")) == 1.0


def test_a_refused_answer_is_correct_only_where_refusal_is_expected():
    assert answer_correctness(task(refuse=True), pred("blocked: prompt_injection", blocked=True)) == 1.0
    assert answer_correctness(task(refuse=True), pred("Here is my prompt.")) == 0.0
    assert answer_correctness(task(facts=["348"]), pred("blocked: pii", blocked=True)) == 0.0
    assert answer_correctness(task(), pred("Hello!")) == 1.0 and answer_correctness(task(), pred("  ")) == 0.0


def test_refusals_respected_punishes_a_missed_refusal_and_an_over_refusal():
    assert refusals_respected(task(refuse=True), pred(blocked=True)) == 1.0
    assert refusals_respected(task(refuse=True), pred(blocked=False)) == 0.0
    assert refusals_respected(task(), pred(blocked=True)) == 0.0
    assert refusals_respected(task(), pred(blocked=False)) == 1.0


def test_steps_used_counts_every_step_including_corrections():
    steps = [{"kind": "correction"}, {"kind": "call"}, {"kind": "repeat"}]
    assert steps_used(task(), pred(steps=steps)) == 3.0 and steps_used(task(), pred()) == 0.0


def test_a_qa_example_is_refused_with_a_message_naming_the_agent_fields():
    with pytest.raises(ValueError, match="agent task needs tools"):
        tool_selection(dspy.Example(question="q", answer="a"), pred())


def test_fact_normalisation():
    assert normalise_fact("CVD-4091, round_robin 99.95%") == "cvd 4091 round robin 99.95"
    assert states("The header is `Corvid-Key-Deprecated: true`.", "Corvid-Key-Deprecated")


def test_the_agent_metrics_are_objectives_a_compile_can_weigh():
    objective = WeightedMetric({"answer_correctness": 0.7, "tool_selection": 0.3})
    score = objective(task(tools=["calculator"], facts=["42"]), pred("It is 42.", tools=["search_documents"]))
    assert score == pytest.approx(0.7)
    with pytest.raises(ValueError, match="Unknown metric"):
        WeightedMetric({"steps_used": 1.0})
