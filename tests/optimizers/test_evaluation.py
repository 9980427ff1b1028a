"""Per-example evaluation: a failing program or metric is counted and explained, never a silent 0; progress is
reported through a callback."""

import pytest

from optimizers.evaluation import evaluate, failures, metric_names
from optimizers.metrics.composite import WeightedMetric


@pytest.fixture
def metric():
    return WeightedMetric({"token_f1": 1.0, "exact_match": 1.0})


def test_a_failing_program_scores_zero_counts_and_keeps_its_error(field_lm, flaky_rag, qa_examples, metric):
    seen = []
    rows = evaluate(flaky_rag("proxy"), qa_examples, metric, progress=lambda done, total: seen.append((done, total)))
    failed = [row for row in rows if row["error"]]
    assert [row["question"] for row in failed] == ["Which port does the proxy listen on?"]
    assert failed[0]["error"] == "RuntimeError: store went away"
    assert all(failed[0][name] == 0.0 for name in metric_names(rows))
    assert failures(rows) == 1 and sum(row["objective"] > 0 for row in rows) >= 1
    assert seen == [(done, 8) for done in range(1, 9)]


def test_a_failing_metric_is_counted_and_the_columns_stay_the_same(field_lm, toy_rag, qa_examples, metric):
    no_sources = qa_examples[0].copy(sources=[])  # citation precision refuses an example without a gold source
    rows = evaluate(toy_rag, [no_sources, *qa_examples[1:3]], metric, num_threads=2)
    assert rows[0]["error"].startswith("ValueError: gold_sources is empty")
    assert failures(rows) == 1
    assert metric_names(rows) == metric_names(evaluate(toy_rag, qa_examples[1:3], metric))
    assert metric_names(rows)[:3] == ["objective", "objective:token_f1", "objective:exact_match"]
