"""The vector store: one protocol, its query semantics and the logic shared by the backends (base), the embedded
Qdrant Edge backend, the qdrant-client backend for a Qdrant server, the factory that opens one, BM25 vectors, each
collection's record, direct access to points by id, and the where-language of metadata filters."""

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
        "CollectionRecord": "pipeline.store.record",
        "read_record": "pipeline.store.record",
        "PointRecord": "pipeline.store.points",
        "upsert_points": "pipeline.store.points",
        "get_points": "pipeline.store.points",
        "delete_points": "pipeline.store.points",
        "parse_where": "pipeline.store.where",
        "where_filter": "pipeline.store.where",
    },
)
