"""Metrics, optimizer factories and the compile routine that let a Tessera program optimize itself."""

from optimizers.answer_metrics import (
    METRICS,
    bleu,
    citation_precision,
    exact_match,
    make_metric,
    precision_at_k,
    rouge_l,
    token_f1,
)
from optimizers.composite import WeightedMetric
from optimizers.judges import JUDGES, AnswerRelevance, ContextSufficiency, Correctness, Faithfulness, Safety, make_judge
from optimizers.metrics import mrr, ndcg_at_k, recall_at_k

__all__ = [
    "JUDGES",
    "METRICS",
    "AnswerRelevance",
    "ContextSufficiency",
    "Correctness",
    "Faithfulness",
    "Safety",
    "WeightedMetric",
    "bleu",
    "citation_precision",
    "exact_match",
    "make_judge",
    "make_metric",
    "mrr",
    "ndcg_at_k",
    "precision_at_k",
    "recall_at_k",
    "rouge_l",
    "token_f1",
]
