"""From files and tables to indexed chunks: parsing, chunking strategies, the sync that keeps a collection equal to a
folder or a table, and the manifests that record what each ingest wrote."""

from pipeline.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "SUPPORTED_SUFFIXES": "pipeline.ingest.parse",
        "parse_file": "pipeline.ingest.parse",
        "Chunker": "pipeline.ingest.chunking",
        "make_chunker": "pipeline.ingest.chunking",
        "IngestReport": "pipeline.ingest.report",
        "Ingestor": "pipeline.ingest.sync",
        "IngestProgress": "pipeline.ingest.report",
        "ProgressCallback": "pipeline.ingest.report",
        "TableColumns": "pipeline.ingest.table",
        "TableIngestor": "pipeline.ingest.table_sync",
    },
)
