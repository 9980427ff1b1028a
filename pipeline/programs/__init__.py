"""The DSPy programs Tessera serves and optimizes."""

from pipeline.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {"RAG": "pipeline.programs.rag"})
