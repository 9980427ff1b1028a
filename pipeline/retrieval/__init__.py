"""Finding the passages for a question: the embedder, hybrid retrieval, rerankers, and GuardedRetrieval (retrieve →
rerank → context guard → top n), which the RAG program and the agent's search tool share."""

from pipeline.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "Embedder": "pipeline.retrieval.embed",
        "SentenceTransformerEmbedder": "pipeline.retrieval.embed",
        "load_embedder": "pipeline.retrieval.embed",
        "HybridRetriever": "pipeline.retrieval.retriever",
        "CrossEncoderReranker": "pipeline.retrieval.rerank",
        "MaxSimReranker": "pipeline.retrieval.rerank",
        "Reranker": "pipeline.retrieval.rerank",
        "make_reranker": "pipeline.retrieval.rerank",
        "GuardedRetrieval": "pipeline.retrieval.guarded",
        "Retrieved": "pipeline.retrieval.guarded",
    },
)
