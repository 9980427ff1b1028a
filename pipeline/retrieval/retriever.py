"""First-stage retrieval over the vector store: dense, BM25 or hybrid (prefetch both, fuse with RRF)."""

from __future__ import annotations

from typing import Literal

from pipeline.documents import Hit
from pipeline.retrieval.embed import Embedder
from pipeline.store.base import SearchFilter, VectorStore
from pipeline.store.bm25 import Bm25Encoder

RetrievalMode = Literal["hybrid", "dense", "bm25"]


class HybridRetriever:
    """Embeds the query (dense and/or sparse) and searches one collection; `filter` restricts every search (a call's
    own filter narrows it further)."""

    def __init__(
        self,
        store: VectorStore,
        collection: str,
        embedder: Embedder,
        bm25: Bm25Encoder | None = None,
        *,
        mode: RetrievalMode = "hybrid",
        k: int = 20,
        prefetch_k: int = 50,
        filter: SearchFilter | None = None,
    ) -> None:
        self.store = store
        self.collection = collection
        self.embedder = embedder
        self.bm25 = bm25 or Bm25Encoder()
        self.mode = mode
        self.k = k
        self.prefetch_k = prefetch_k
        self.filter = filter

    def retrieve(self, query: str, *, k: int | None = None, filter: SearchFilter | None = None) -> list[Hit]:
        dense = self.embedder.encode([query])[0] if self.mode in ("hybrid", "dense") else None
        sparse = self.bm25.encode_query(query) if self.mode in ("hybrid", "bm25") else None
        return self.store.search(
            self.collection,
            dense=dense,
            sparse=sparse,
            limit=k or self.k,
            prefetch_limit=max(self.prefetch_k, k or self.k),
            filter=self.filter.narrowed(filter) if self.filter is not None else filter,
        )
