"""The vector store: one protocol and its shared query semantics (base), the embedded Qdrant Edge backend, the
qdrant-client backend for a Qdrant server, and BM25 sparse vectors."""

from pipeline.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "SearchFilter": "pipeline.store.base",
        "VectorStore": "pipeline.store.base",
        "open_store": "pipeline.store.base",
        "require_collection": "pipeline.store.base",
        "EdgeStore": "pipeline.store.edge",
        "QdrantStore": "pipeline.store.qdrant",
        "Bm25Encoder": "pipeline.store.bm25",
        "SparseVector": "pipeline.store.bm25",
    },
)
