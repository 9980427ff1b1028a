"""One embedding per text per request: the input guard (injection kNN) and the retriever (dense leg) embed the same
question, and a memo in front of the embedder they share lets the second ask cost nothing.

The memo lives only inside `one_embedding_per_text()` (the RAG program opens it around each question), so it
never grows across requests; outside it the embedder is called as is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import numpy as np

from pipeline.retrieval.embed import Embedder

_MEMO: ContextVar[dict[str, np.ndarray] | None] = ContextVar("tessera_request_embeddings", default=None)


@contextlib.contextmanager
def one_embedding_per_text() -> Iterator[None]:
    """Within this block, a text embedded by a `RequestMemoEmbedder` is embedded once."""
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


class RequestMemoEmbedder:
    """The wrapped embedder, answering texts already embedded in this request from the memo.

    Everything else (`name`, `model`, `encode_tokens`, …) is the wrapped embedder's.
    """

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.dim = embedder.dim

    def __getattr__(self, name: str) -> Any:
        if name == "embedder":  # not set yet (copy, unpickle): no recursion
            raise AttributeError(name)
        return getattr(self.embedder, name)

    def encode(self, texts: list[str]) -> np.ndarray:
        memo = _MEMO.get()
        if memo is None:
            return self.embedder.encode(texts)
        missing = list(dict.fromkeys(text for text in texts if text not in memo))
        if missing:
            memo.update(zip(missing, self.embedder.encode(missing)))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([memo[text] for text in texts])
