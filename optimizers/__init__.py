"""Metrics, optimizer factories and the compile routine that let a Tessera program optimize itself."""

from optimizers.metrics import mrr, ndcg_at_k, recall_at_k

__all__ = ["mrr", "ndcg_at_k", "recall_at_k"]
