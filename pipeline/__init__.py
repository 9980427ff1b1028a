"""Tessera's runtime: settings, models, parsing and chunking, the vector store, ingest, retrieval and the RAG program."""

from pipeline.bm25 import Bm25Encoder, SparseVector
from pipeline.chunking import Chunker, make_chunker
from pipeline.config import Settings, load_settings
from pipeline.documents import Chunk, Hit, Section
from pipeline.embed import Embedder, SentenceTransformerEmbedder, load_embedder
from pipeline.errors import (
    CollectionNotFoundError,
    ConfigError,
    IngestError,
    LMError,
    QueryError,
    StoreError,
    StoreLockedError,
    TesseraError,
    UnsupportedFileError,
)
from pipeline.ingest import IngestReport, Ingestor
from pipeline.lm import make_lm
from pipeline.parse import SUPPORTED_SUFFIXES, parse_file
from pipeline.plain_adapter import PlainAdapter, adapter_for
from pipeline.rag import RAG
from pipeline.rerank import CrossEncoderReranker, MaxSimReranker, Reranker, make_reranker
from pipeline.retriever import HybridRetriever
from pipeline.store import SearchFilter, VectorStore, open_store

__all__ = [
    "RAG",
    "SUPPORTED_SUFFIXES",
    "Bm25Encoder",
    "Chunk",
    "Chunker",
    "CollectionNotFoundError",
    "ConfigError",
    "CrossEncoderReranker",
    "Embedder",
    "Hit",
    "HybridRetriever",
    "IngestError",
    "IngestReport",
    "Ingestor",
    "LMError",
    "MaxSimReranker",
    "PlainAdapter",
    "QueryError",
    "Reranker",
    "SearchFilter",
    "Section",
    "SentenceTransformerEmbedder",
    "Settings",
    "SparseVector",
    "StoreError",
    "StoreLockedError",
    "TesseraError",
    "UnsupportedFileError",
    "VectorStore",
    "adapter_for",
    "load_embedder",
    "load_settings",
    "make_chunker",
    "make_lm",
    "make_reranker",
    "open_store",
    "parse_file",
]
