"""Deterministic answer metrics: hand-checked values and the (example, pred, trace) form optimizers call."""

import dspy
import pytest

from optimizers.metrics.answer import (
    bleu,
    citation_precision,
    exact_match,
    make_metric,
    precision_at_k,
    rouge_l,
    token_f1,
)
from pipeline.documents import Chunk, Hit


def test_exact_match_ignores_case_punctuation_and_articles():
    assert exact_match("The port is 9180.", "port is 9180") == 1.0
    assert exact_match("9180", "8443") == 0.0


def test_token_f1_by_hand():
    # prediction tokens: admin port 9180 (3); gold: default admin port is 9180 (5); common 3
    assert token_f1("admin port 9180", "the default admin port is 9180") == pytest.approx(2 * 1 * 0.6 / 1.6)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0


def test_rouge_l_and_bleu_rank_a_close_answer_above_a_wrong_one():
    gold = "run corvidctl apikey rotate with the key id"
    close, wrong = "run corvidctl apikey rotate KEY_ID", "restart the gateway"
    assert rouge_l(close, gold) > rouge_l(wrong, gold) >= 0.0
    assert bleu(close, gold) > bleu(wrong, gold) >= 0.0
    assert rouge_l(gold, gold) == pytest.approx(1.0) and bleu(gold, gold) == pytest.approx(1.0)


def test_precision_and_citation_precision():
    assert precision_at_k(["a", "a", "b", "c"], ["a", "c"], 2) == 0.5
    assert citation_precision(["a", "b", "a"], ["a"]) == pytest.approx(2 / 3)
    # Citing nothing is a miss, as retrieving nothing is for precision@k: refusing cannot raise the score.
    assert citation_precision([], ["a"]) == precision_at_k([], ["a"], 5) == 0.0
    assert "0.0 for an answer that cites nothing" in citation_precision.__doc__
    with pytest.raises(ValueError, match="gold_sources is empty"):
        citation_precision(["a"], [])


def test_program_metrics_read_the_prediction_and_example():
    example = dspy.Example(question="q", answer="port 9180", sources=["ports.md"]).with_inputs("question")
    hits = [Hit(Chunk("t", "ports.md", (), 0, 1), 1.0), Hit(Chunk("u", "keys.md", (), 0, 1), 0.5)]
    pred = dspy.Prediction(answer="Port 9180.", hits=hits)
    assert make_metric("exact_match")(example, pred) == 1.0
    assert make_metric("recall@5")(example, pred) == 1.0
    assert make_metric("citation_precision")(example, pred) == 0.5
    with pytest.raises(ValueError, match="Valid metrics: exact_match"):
        make_metric("f2")
