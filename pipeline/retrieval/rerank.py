"""Rerankers: re-score the retriever's top hits against the question before generation.

Two offline implementations: a sentence-transformers cross-encoder read from a local folder or the
Hugging Face cache, and late interaction (ColBERT-style MaxSim) over the bundled MiniLM's token
embeddings, which needs no extra model.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from pipeline.documents import Hit
from pipeline.errors import ConfigError
from pipeline.retrieval.embed import TokenEmbedder

log = logging.getLogger(__name__)

RERANKER_KINDS = ("none", "maxsim", "cross-encoder")


class Reranker(Protocol):
    """Re-scores hits for a query.

    Returns at most `top_n` hits carrying the reranker's own scores, best first. Hits that score
    the same keep their incoming order; no hits in gives no hits out.
    """

    def rerank(self, query: str, hits: list[Hit], top_n: int) -> list[Hit]: ...


def rank_by_scores(hits: Sequence[Hit], scores: Sequence[float], top_n: int) -> list[Hit]:
    """The `top_n` hits re-scored with `scores`, highest first; ties keep their incoming order."""
    if len(scores) != len(hits):
        raise ValueError(f"Got {len(scores)} scores for {len(hits)} hits.")
    order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
    return [Hit(chunk=hits[i].chunk, score=float(scores[i])) for i in order[:top_n]]


def check_top_n(top_n: int) -> None:
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        raise ValueError(f"top_n must be a positive integer, got {top_n!r}.")


class CrossEncoderReranker:
    """Scores each (query, chunk text) pair jointly with a sentence-transformers CrossEncoder.

    `model` is a local folder holding a cross-encoder (config.json, weights, tokenizer) or a hub
    name such as "cross-encoder/ms-marco-MiniLM-L6-v2" that is already in the local Hugging Face
    cache. Nothing is downloaded: Tessera runs offline.
    """

    def __init__(self, model: str, batch_size: int = 32, device: str = "cpu") -> None:
        from sentence_transformers import CrossEncoder

        if not model or not model.strip():
            raise ConfigError(missing_model_message("an empty name"))
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        if looks_like_path(model) and not Path(model).expanduser().exists():
            raise ConfigError(missing_model_message(f"{model!r}, which does not exist"))
        location = str(Path(model).expanduser()) if looks_like_path(model) else model
        log.info("loading cross-encoder reranker %s", location)
        try:
            self.model = CrossEncoder(location, device=device, local_files_only=True)
        except (OSError, ValueError) as exc:
            if looks_like_path(model):
                what = f"{model!r}, which cannot be loaded ({exc})"
            else:
                what = f"{model!r}, which is neither a local folder nor in the local Hugging Face cache"
            raise ConfigError(missing_model_message(what)) from exc
        num_labels = int(self.model.config.num_labels)
        if num_labels != 1:
            raise ConfigError(
                f"Cross-encoder {model!r} has {num_labels} output labels; a reranker needs a model "
                "with one relevance score per pair (num_labels=1), such as an ms-marco cross-encoder."
            )
        self.name = model
        self.batch_size = batch_size

    def rerank(self, query: str, hits: list[Hit], top_n: int) -> list[Hit]:
        check_top_n(top_n)
        if not hits:
            return []
        pairs = [(query, hit.chunk.text) for hit in hits]
        scores = self.model.predict(
            pairs, batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True
        )
        return rank_by_scores(hits, np.asarray(scores, dtype=np.float64).reshape(-1).tolist(), top_n)


def looks_like_path(model: str) -> bool:
    """Whether a model string names a filesystem location rather than a hub repository id."""
    return model.startswith((".", "/", "~")) or "\\" in model or model.count("/") > 1 or Path(model).exists()


def missing_model_message(what: str) -> str:
    return (
        f"Cannot load the cross-encoder reranker from {what}. Pass a local folder holding a "
        "sentence-transformers cross-encoder (config.json, model weights and tokenizer files), or a "
        "hub name already in the local Hugging Face cache; Tessera never downloads models. "
        "For an offline reranker with no extra model, use kind 'maxsim'."
    )


class MaxSimReranker:
    """Late interaction (ColBERT-style MaxSim) over an embedder's normalised token vectors.

    Scoring, per hit:
      1. embed the query and the chunk text into one unit vector per token;
      2. for each query token, take its highest cosine similarity to any chunk token;
      3. sum these maxima over the query tokens: that sum is the MaxSim score.
    With `retrieval_weight` > 0 the MaxSim rank is fused with the incoming rank by weighted
    reciprocal rank fusion, score = 1/(rrf_k + maxsim_rank) + retrieval_weight/(rrf_k + incoming_rank),
    so a strong retriever's order is not thrown away. Chunk token vectors are kept in an LRU cache
    keyed by chunk id (ids are derived from chunk content), so repeated queries over the same
    chunks only embed the query; an entry is tokens x dim float32 (MiniLM: up to 256 x 384, about
    0.4 MB), so the default 512 entries stay under about 200 MB. Chunks longer than the embedder's
    sequence limit are scored on their first tokens.
    """

    def __init__(
        self,
        embedder: TokenEmbedder,
        *,
        retrieval_weight: float = 0.0,
        rrf_k: int = 60,
        cache_size: int = 512,
    ) -> None:
        if not callable(getattr(embedder, "encode_tokens", None)):
            raise ConfigError(
                f"The maxsim reranker needs an embedder with token embeddings (encode_tokens); "
                f"{type(embedder).__name__} has none. Use the default sentence-transformers embedder."
            )
        if retrieval_weight < 0:
            raise ValueError(f"retrieval_weight must be 0 or more, got {retrieval_weight}.")
        if rrf_k < 0:
            raise ValueError(f"rrf_k must be 0 or more, got {rrf_k}.")
        if cache_size < 0:
            raise ValueError(f"cache_size must be 0 or more, got {cache_size}.")
        self.embedder = embedder
        self.retrieval_weight = retrieval_weight
        self.rrf_k = rrf_k
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def rerank(self, query: str, hits: list[Hit], top_n: int) -> list[Hit]:
        check_top_n(top_n)
        if not hits:
            return []
        query_tokens = self.embedder.encode_tokens([query])[0]
        chunk_tokens = self.chunk_tokens(hits)
        scores = maxsim_scores(query_tokens, chunk_tokens)
        if self.retrieval_weight > 0:
            scores = self.fuse_with_incoming_rank(scores)
        return rank_by_scores(hits, scores, top_n)

    def fuse_with_incoming_rank(self, maxsim_scores: list[float]) -> list[float]:
        order = sorted(range(len(maxsim_scores)), key=lambda i: (-maxsim_scores[i], i))
        maxsim_rank = {index: rank for rank, index in enumerate(order, start=1)}
        return [
            1.0 / (self.rrf_k + maxsim_rank[i]) + self.retrieval_weight / (self.rrf_k + i + 1)
            for i in range(len(maxsim_scores))
        ]

    def chunk_tokens(self, hits: list[Hit]) -> list[np.ndarray]:
        """Token vectors for each hit's chunk, from the cache where present; the rest embedded in one batch."""
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for hit in hits:
                cached = self._cache.get(hit.chunk.id)
                if cached is not None:
                    self._cache.move_to_end(hit.chunk.id)
                    found[hit.chunk.id] = cached
        missing: dict[str, str] = {}
        for hit in hits:
            if hit.chunk.id not in found:
                missing.setdefault(hit.chunk.id, hit.chunk.text)
        if missing:
            encoded = self.embedder.encode_tokens(list(missing.values()))
            found.update(zip(missing, encoded))
            with self._lock:
                for chunk_id in missing:
                    self._remember(chunk_id, found[chunk_id])
        return [found[hit.chunk.id] for hit in hits]

    def _remember(self, chunk_id: str, tokens: np.ndarray) -> None:
        if self.cache_size == 0:
            return
        self._cache[chunk_id] = tokens
        self._cache.move_to_end(chunk_id)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()


def maxsim_scores(query_tokens: np.ndarray, docs: Sequence[np.ndarray]) -> list[float]:
    """For each document, the sum over query tokens of the best cosine similarity to any of its tokens.

    Inputs are unit vectors, one row per token. A document (or query) without tokens scores 0. All
    documents go through one matrix product: twenty small ones cost more in BLAS start-up than math.
    """
    scores = [0.0] * len(docs)
    present = [i for i, doc in enumerate(docs) if doc.shape[0] > 0]
    if query_tokens.shape[0] == 0 or not present:
        return scores
    similarities = query_tokens @ np.concatenate([docs[i] for i in present]).T
    starts = np.cumsum([0] + [docs[i].shape[0] for i in present[:-1]])
    best = np.maximum.reduceat(similarities, starts, axis=1).sum(axis=0)
    for i, score in zip(present, best.tolist()):
        scores[i] = score
    return scores


def make_reranker(kind: str, model: str | None, embedder: TokenEmbedder | None) -> Reranker | None:
    """The reranker a configuration names, or None for kind "none".

    "maxsim" reuses `embedder` (it must provide token embeddings); "cross-encoder" loads `model`,
    a local folder or a cached hub name. `model` is ignored for "none".
    """
    name = kind.strip().lower() if isinstance(kind, str) else kind
    if name == "none":
        return None
    if name == "maxsim":
        if model is not None:
            raise ConfigError(
                f"Reranker kind 'maxsim' takes no model (got {model!r}): it uses the embedder's token "
                "vectors. Remove the reranker model, or set kind 'cross-encoder' to use that model."
            )
        if embedder is None:
            raise ConfigError("Reranker kind 'maxsim' needs an embedder; pass the pipeline's embedder.")
        return MaxSimReranker(embedder)
    if name == "cross-encoder":
        if not model:
            raise ConfigError(
                "Reranker kind 'cross-encoder' needs a model: a local folder holding a cross-encoder, "
                "or a hub name already in the local Hugging Face cache."
            )
        return CrossEncoderReranker(model)
    raise ConfigError(f"Unknown reranker kind {kind!r}. Valid kinds: {', '.join(RERANKER_KINDS)}.")
