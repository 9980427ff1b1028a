"""Tessera's runtime: settings, models, parsing and chunking, the vector store, ingest, retrieval and the RAG program.

Names are imported on first use (see `pipeline.lazy_exports`); the rooms are `lm`, `ingest`, `store`, `retrieval`,
`programs` and `serving`.
"""

from pipeline.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "Settings": "pipeline.config",
        "load_settings": "pipeline.config",
        "Chunk": "pipeline.documents",
        "Hit": "pipeline.documents",
        "Section": "pipeline.documents",
        "CollectionNotFoundError": "pipeline.errors",
        "ConfigError": "pipeline.errors",
        "EvalSetError": "pipeline.errors",
        "IngestError": "pipeline.errors",
        "LMError": "pipeline.errors",
        "QueryError": "pipeline.errors",
        "StoreError": "pipeline.errors",
        "StoreLockedError": "pipeline.errors",
        "TesseraError": "pipeline.errors",
        "UnsupportedFileError": "pipeline.errors",
        "make_lm": "pipeline.lm.factory",
        "PlainAdapter": "pipeline.lm.plain_adapter",
        "adapter_for": "pipeline.lm.plain_adapter",
        "Chunker": "pipeline.ingest.chunking",
        "make_chunker": "pipeline.ingest.chunking",
        "SUPPORTED_SUFFIXES": "pipeline.ingest.parse",
        "parse_file": "pipeline.ingest.parse",
        "IngestReport": "pipeline.ingest.report",
        "Ingestor": "pipeline.ingest.sync",
        "SearchFilter": "pipeline.store.base",
        "VectorStore": "pipeline.store.base",
        "open_store": "pipeline.store.factory",
        "Bm25Encoder": "pipeline.store.bm25",
        "SparseVector": "pipeline.store.bm25",
        "Embedder": "pipeline.retrieval.embed",
        "SentenceTransformerEmbedder": "pipeline.retrieval.embed",
        "load_embedder": "pipeline.retrieval.embed",
        "CrossEncoderReranker": "pipeline.retrieval.rerank",
        "MaxSimReranker": "pipeline.retrieval.rerank",
        "Reranker": "pipeline.retrieval.rerank",
        "make_reranker": "pipeline.retrieval.rerank",
        "HybridRetriever": "pipeline.retrieval.retriever",
        "GuardedRetrieval": "pipeline.retrieval.guarded",
        "RAG": "pipeline.programs.rag",
    },
)
