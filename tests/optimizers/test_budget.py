"""The budget cap: calls, tokens and cost are counted on every LM call and the compile stops where the cap is."""

import uuid

import dspy
import pytest

from optimizers.budget import Budget, BudgetExhausted, LMMeter, estimated_cost
from optimizers.compile import CompileRequest, compile_program, prepare
from optimizers.factories import make_optimizer
from optimizers.metrics.answer import METRICS
from pipeline.errors import ConfigError
from pipeline.lm.factory import make_lm

ANSWER = "[[ ## answer ## ]]\n9180\n\n[[ ## completed ## ]]"


def priced_lm(**pricing):
    """A LiteLLM-backed LM answering from `mock_response` (no network); LiteLLM prices each call itself."""
    return dspy.LM("openai/gpt-4o-mini", api_key="unused", mock_response=ANSWER, **pricing)


def test_meter_counts_calls_and_tokens_and_refuses_past_the_cap(field_lm):
    meter = LMMeter(Budget(max_lm_calls=3))
    predict = dspy.Predict("question -> answer")
    with meter.active():
        for _ in range(3):
            predict(question="Which port?")
        with pytest.raises(BudgetExhausted, match="3 LM calls"):
            predict(question="One too many")
    assert (meter.calls, field_lm.calls) == (3, 3)
    assert meter.tokens == 45 and meter.exhausted


def test_token_cap_stops_after_the_call_that_crosses_it(field_lm):
    meter = LMMeter(Budget(max_tokens=20))
    predict = dspy.Predict("question -> answer")
    with meter.active(), pytest.raises(BudgetExhausted, match="tokens"):
        for _ in range(5):
            predict(question="Which port?")
    assert field_lm.calls == 2


def test_budget_reaches_dspy_worker_threads(field_lm, qa_examples):
    meter = LMMeter(Budget(max_lm_calls=4))
    evaluate = dspy.Evaluate(devset=qa_examples, metric=lambda ex, pred, trace=None: 1.0, num_threads=4)
    with meter.active(), pytest.raises(BudgetExhausted):
        evaluate(dspy.Predict("question -> answer"))
    # Four threads start calls at once: each takes a slot as it starts, so the LM answers the cap and no more (the
    # meter's own count of finished calls may still lag on the other threads when the error surfaces).
    assert field_lm.calls == 4


def test_bad_caps_are_refused():
    with pytest.raises(ValueError, match="max_lm_calls must be positive"):
        Budget(max_lm_calls=0)


def test_cost_estimate_is_zero_for_local_models_and_priced_for_known_ones():
    assert estimated_cost("local/smollm2", 1000, 1000) == 0.0
    assert estimated_cost("openai/gpt-4o-mini", 1_000_000, 0) > 0


def test_cost_cap_counts_the_cost_litellm_reports_for_each_call():
    # Custom per-token prices (an Azure deployment, a negotiated rate) reach LiteLLM's per-call cost, not its table.
    lm = priced_lm(cache=False, input_cost_per_token=1e-3, output_cost_per_token=1e-3)
    meter = LMMeter(Budget(max_cost=0.1))
    predict = dspy.Predict("question -> answer")
    with dspy.context(lm=lm), meter.active(), pytest.raises(BudgetExhausted, match=r"\$0.1200 \(cap \$0.1\)"):
        for _ in range(10):
            predict(question="Which port?")
    assert meter.calls == 4 and meter.cost == pytest.approx(sum(entry["cost"] for entry in lm.history))


def test_a_cache_hit_costs_nothing():
    lm = priced_lm(cache=True)
    meter = LMMeter(Budget(max_cost=1.0))
    question = f"Which port? {uuid.uuid4()}"  # never cached before this test
    with dspy.context(lm=lm), meter.active():
        dspy.Predict("question -> answer")(question=question)
        dspy.Predict("question -> answer")(question=question)
    assert meter.calls == 2 and meter.cost == pytest.approx(lm.history[0]["cost"]) and meter.cost > 0


def test_a_cost_cap_on_a_model_without_a_known_price_is_refused_before_any_call(tmp_path):
    request = CompileRequest(budget=Budget(max_cost=5.0), train=4, dev=4, test=4)
    unpriced = dspy.LM("anthropic/claude-sonnet-4")
    with dspy.context(lm=unpriced), pytest.raises(ConfigError, match=r"none for 'anthropic/claude-sonnet-4'.*--max-tokens"):
        prepare(request)
    with dspy.context(lm=make_lm("local/smollm2")), pytest.raises(ConfigError, match="anthropic/claude-sonnet-4"):
        prepare(request, judge_lm=unpriced)
    assert unpriced.history == []
    with dspy.context(lm=make_lm("local/smollm2")):
        prepare(request)  # the embedded model is free
        prepare(CompileRequest(budget=Budget(max_tokens=1000), train=4, dev=4, test=4), judge_lm=unpriced)


def test_bootstrap_stopped_by_the_budget_keeps_the_demos_found_so_far(field_lm, toy_rag, qa_examples):
    optimizer = make_optimizer("bootstrap", METRICS["token_f1"], max_bootstrapped_demos=8, metric_threshold=None)
    meter = LMMeter(Budget(max_lm_calls=3))
    outcome = compile_program(optimizer, toy_rag, qa_examples, qa_examples[:2], meter)
    assert outcome.stopped_by_budget == "3 LM calls (cap 3)"
    demos = outcome.program.generate.demos
    assert 1 <= len(demos) <= 3 and f"{len(demos)} demos bootstrapped" in outcome.kept
    assert toy_rag.generate.demos == []  # the student itself is untouched


def test_random_search_stopped_by_the_budget_keeps_the_best_evaluated_candidate(field_lm, toy_rag, qa_examples):
    optimizer = make_optimizer("random_search", METRICS["token_f1"], num_candidate_programs=6, max_bootstrapped_demos=2)
    meter = LMMeter(Budget(max_lm_calls=20))
    outcome = compile_program(optimizer, toy_rag, qa_examples[:4], qa_examples[4:], meter)
    assert outcome.stopped_by_budget and meter.calls == 20
    assert meter.candidates and outcome.kept.startswith("best of")
    assert outcome.program is meter.best_candidate().program


def test_nothing_evaluated_before_the_stop_keeps_the_uncompiled_program(field_lm, toy_rag, qa_examples):
    optimizer = make_optimizer("simba", METRICS["token_f1"], bsize=4, num_candidates=2, max_steps=2)
    outcome = compile_program(optimizer, toy_rag, qa_examples, qa_examples[:2], LMMeter(Budget(max_lm_calls=2)))
    assert outcome.program is toy_rag and "uncompiled" in outcome.kept
