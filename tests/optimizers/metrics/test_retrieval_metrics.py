"""Retrieval metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest

from optimizers import mrr, ndcg_at_k, recall_at_k


def test_recall_counts_distinct_sources_within_k():
    retrieved = ["a.md", "a.md", "b.md", "c.md", "d.md"]  # distinct: a, b, c, d
    gold = ["b.md", "d.md", "e.md"]
    assert recall_at_k(retrieved, gold, k=1) == 0.0
    assert recall_at_k(retrieved, gold, k=2) == pytest.approx(1 / 3)  # a, b: repeats of a don't use up k
    assert recall_at_k(retrieved, gold, k=4) == pytest.approx(2 / 3)
    assert recall_at_k(retrieved, gold, k=100) == pytest.approx(2 / 3)


def test_recall_ignores_repeated_gold_sources():
    assert recall_at_k(["a.md"], ["a.md", "a.md"], k=1) == 1.0


def test_recall_with_nothing_retrieved_is_zero():
    assert recall_at_k([], ["a.md"], k=3) == 0.0


def test_mrr_uses_rank_among_distinct_sources():
    assert mrr(["a.md", "a.md", "b.md"], ["b.md"]) == pytest.approx(1 / 2)
    assert mrr(["b.md", "a.md"], ["a.md", "b.md"]) == 1.0
    assert mrr(["x.md", "y.md", "z.md", "b.md"], ["b.md"]) == pytest.approx(1 / 4)
    assert mrr(["x.md"], ["b.md"]) == 0.0
    assert mrr([], ["b.md"]) == 0.0


def test_ndcg_with_binary_relevance_on_distinct_sources():
    retrieved = ["a.md", "b.md", "a.md", "c.md"]  # distinct: a, b, c
    gold = ["b.md", "c.md"]
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    idcg = 1 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(retrieved, gold, k=3) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(retrieved, gold, k=3) == pytest.approx(0.693426, abs=1e-6)
    assert ndcg_at_k(retrieved, gold, k=1) == 0.0


def test_ndcg_is_one_for_an_ideal_ranking():
    assert ndcg_at_k(["b.md", "c.md", "a.md"], ["c.md", "b.md"], k=3) == pytest.approx(1.0)


def test_ndcg_ideal_list_is_cut_at_k():
    # Three gold sources but k=2: the ideal list holds two of them.
    assert ndcg_at_k(["a.md", "x.md"], ["a.md", "b.md", "c.md"], k=2) == pytest.approx(1 / (1 + 1 / math.log2(3)))


@pytest.mark.parametrize("k", [0, -3, 1.5, True])
def test_bad_k_is_rejected(k):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        recall_at_k(["a.md"], ["a.md"], k=k)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        ndcg_at_k(["a.md"], ["a.md"], k=k)


@pytest.mark.parametrize("metric", [lambda r, g: recall_at_k(r, g, 3), mrr, lambda r, g: ndcg_at_k(r, g, 3)])
def test_empty_gold_is_rejected(metric):
    with pytest.raises(ValueError, match="gold_sources is empty"):
        metric(["a.md"], [])


def test_a_single_string_instead_of_a_list_is_rejected():
    with pytest.raises(ValueError, match="not a single string"):
        mrr(["a.md"], "a.md")
    with pytest.raises(ValueError, match="not a single string"):
        recall_at_k("a.md", ["a.md"], k=1)
    with pytest.raises(ValueError, match="only source names"):
        ndcg_at_k([1, 2], ["a.md"], k=1)
