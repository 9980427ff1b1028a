"""Metrics that score a program's output against an eval example; for now, retrieval metrics over source documents.

Retrieval metrics judge documents, not chunks: several chunks from one source count once, at the
rank where that source first appears. All scores lie in [0, 1], higher is better.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def recall_at_k(retrieved_sources: Sequence[str], gold_sources: Sequence[str], k: int) -> float:
    """Share of the gold sources that appear among the first `k` distinct retrieved sources.

    Scoring:
      1. de-duplicate `retrieved_sources`, keeping each source at its first occurrence;
      2. keep the first `k` of those distinct sources;
      3. return |gold ∩ kept| / |gold| (gold de-duplicated too).

    Raises ValueError when `k` < 1, when `gold_sources` is empty, or when either argument is a
    single string instead of a list of sources.
    """
    retrieved, gold = checked_sources(retrieved_sources, gold_sources)
    check_k(k)
    found = gold.intersection(retrieved[:k])
    return len(found) / len(gold)


def mrr(retrieved_sources: Sequence[str], gold_sources: Sequence[str]) -> float:
    """Reciprocal rank of the first gold source among the distinct retrieved sources.

    Scoring:
      1. de-duplicate `retrieved_sources`, keeping each source at its first occurrence;
      2. find the 1-based rank r of the first source that is in the gold set;
      3. return 1 / r, or 0.0 when no gold source was retrieved.

    Averaged over an eval set this is the mean reciprocal rank. Raises ValueError when
    `gold_sources` is empty or either argument is a single string.
    """
    retrieved, gold = checked_sources(retrieved_sources, gold_sources)
    for rank, source in enumerate(retrieved, start=1):
        if source in gold:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(retrieved_sources: Sequence[str], gold_sources: Sequence[str], k: int) -> float:
    """Normalised discounted cumulative gain at `k`, with binary relevance on source documents.

    Scoring:
      1. de-duplicate `retrieved_sources`, keeping each source at its first occurrence, and keep
         the first `k`;
      2. DCG = sum over those ranks r = 1..k of rel(r) / log2(r + 1), where rel is 1 for a gold
         source and 0 otherwise;
      3. IDCG = the DCG of an ideal list, gold sources first: sum of 1 / log2(r + 1) for
         r = 1..min(k, |gold|);
      4. return DCG / IDCG.

    Raises ValueError when `k` < 1, when `gold_sources` is empty, or when either argument is a
    single string.
    """
    retrieved, gold = checked_sources(retrieved_sources, gold_sources)
    check_k(k)
    dcg = sum(1.0 / math.log2(rank + 1) for rank, source in enumerate(retrieved[:k], start=1) if source in gold)
    idcg = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(k, len(gold)) + 1))
    return dcg / idcg


def check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")


def checked_sources(retrieved_sources: Sequence[str], gold_sources: Sequence[str]) -> tuple[list[str], set[str]]:
    """Validated inputs: the retrieved sources de-duplicated in first-occurrence order, and the gold set."""
    for name, value in (("retrieved_sources", retrieved_sources), ("gold_sources", gold_sources)):
        if isinstance(value, (str, bytes)):
            raise ValueError(f"{name} must be a list of source names, not a single string: wrap it as [{value!r}].")
        if not all(isinstance(source, str) for source in value):
            raise ValueError(f"{name} must contain only source names (str), got {list(value)!r}.")
    if not gold_sources:
        raise ValueError(
            "gold_sources is empty: retrieval metrics need at least one gold source per example; "
            "drop examples without gold sources from retrieval scoring."
        )
    return list(dict.fromkeys(retrieved_sources)), set(gold_sources)
