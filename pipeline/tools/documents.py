"""The document-search tool: GuardedRetrieval behind a `search_documents(query)` tool, so the agent reads the same
guarded, redacted passages the RAG program does and their chunk ids flow into the final answer as citations."""

from __future__ import annotations

from pipeline.programs.rag import format_context
from pipeline.retrieval.guarded import GuardedRetrieval
from pipeline.tools.base import DEFAULT_TIMEOUT_S, Tool, ToolError, ToolResult

MAX_QUERY_CHARS = 1000


def document_search_tool(retrieval: GuardedRetrieval, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Tool:
    """A `search_documents(query)` Tool over `retrieval`; its result carries the passages' chunk ids and hits."""

    def search_documents(query: str) -> ToolResult:
        """Search the Corvid Gateway documentation and return the most relevant passages, numbered, with their files.

        Args:
            query: what to look for, in a few words or a question, e.g. "default admin API port".
        """
        query = " ".join(query.split())
        if not query:
            raise ToolError("the query is empty; say what to look for, e.g. 'how to rotate API keys'")
        if len(query) > MAX_QUERY_CHARS:
            raise ToolError(f"the query is {len(query)} characters long; keep it under {MAX_QUERY_CHARS}")
        retrieved = retrieval(query)
        hits = tuple(retrieved.hits)
        if not hits:
            return ToolResult(f"no passages found for {query!r}; try other words", data=retrieved)
        return ToolResult(format_context(list(hits)), citations=tuple(hit.chunk.id for hit in hits), hits=hits,
                          data=retrieved)

    return Tool.from_function(search_documents, timeout_s=timeout_s)
