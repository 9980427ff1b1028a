"""The vector store: one protocol, its query semantics and the logic shared by the backends (base), the embedded
Qdrant Edge backend, the qdrant-client backend for a Qdrant server, the factory that opens one, and BM25 vectors."""

from pipeline.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "SearchFilter": "pipeline.store.base",
        "VectorStore": "pipeline.store.base",
        "open_store": "pipeline.store.factory",
        "require_collection": "pipeline.store.factory",
        "EdgeStore": "pipeline.store.edge",
        "QdrantStore": "pipeline.store.qdrant",
        "Bm25Encoder": "pipeline.store.bm25",
        "SparseVector": "pipeline.store.bm25",
    },
)
