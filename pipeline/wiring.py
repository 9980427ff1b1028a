"""Build the runtime pieces (store, embedder, ingestor, RAG program, agent) from one Settings object."""

from __future__ import annotations

import sys
from collections.abc import Iterable

import dspy

from guardrails.policy import Guards, build_guards
from pipeline.agent.program import Agent
from pipeline.config import Settings
from pipeline.ingest.chunking import Chunker, make_chunker
from pipeline.ingest.sync import Ingestor
from pipeline.lm.embedded import load_local_model
from pipeline.lm.factory import make_lm
from pipeline.lm.plain_adapter import adapter_for
from pipeline.programs.rag import RAG
from pipeline.retrieval.embed import SentenceTransformerEmbedder, load_embedder
from pipeline.retrieval.guarded import GuardedRetrieval
from pipeline.retrieval.memo import RequestMemoEmbedder
from pipeline.retrieval.rerank import make_reranker
from pipeline.retrieval.retriever import HybridRetriever
from pipeline.retrieval.verdicts import ContextVerdicts
from pipeline.store.base import SearchFilter, VectorStore
from pipeline.store.factory import open_store
from pipeline.store.record import check_embedder, read_record
from pipeline.tools.base import Tool
from pipeline.tools.calculator import calculator
from pipeline.tools.documents import document_search_tool
from pipeline.tools.mcp_client import McpServerTools, mcp_tools
from pipeline.tools.registry import ToolRegistry
from pipeline.tools.settings import McpServerSettings
from pipeline.tools.sql import sql_tools


def open_configured_store(settings: Settings) -> VectorStore:
    store = settings.store
    api_key = store.api_key.get_secret_value() if store.api_key else None
    return open_store(path=store.path if store.url is None else None, url=store.url, api_key=api_key)


def build_chunker(settings: Settings, embedder: SentenceTransformerEmbedder) -> Chunker:
    chunking = settings.chunking
    return make_chunker(
        chunking.strategy,
        size=chunking.size,
        overlap=chunking.overlap,
        tokenizer=embedder.model.tokenizer if chunking.strategy == "tokens" else None,
        embedder=embedder if chunking.strategy == "semantic" else None,
    )


def build_ingestor(settings: Settings, store: VectorStore) -> Ingestor:
    """The Ingestor, storing the context guard's verdict with each chunk so queries need not run it."""
    embedder = load_embedder(settings.embedder, settings.embedder_dtype)
    verdicts = ContextVerdicts(build_guards(settings.guards, embedder).context)
    return Ingestor(
        store, settings.collection, embedder, build_chunker(settings, embedder), follow_links=settings.ingest.follow_links,
        verdicts=verdicts or None,
    )


def build_rag(settings: Settings, store: VectorStore, where: SearchFilter | None = None) -> RAG:
    check_query_embedder(settings, store)
    # Shared by the input guard and the retriever, which then embed each question once.
    embedder = RequestMemoEmbedder(load_embedder(settings.embedder, settings.embedder_dtype))
    guards = build_request_guards(settings, store, embedder)
    retrieval = build_retrieval(settings, store, embedder=embedder, guards=guards, where=where)
    record = settings.tracing.record_questions
    return RAG(retrieval, input_guard=guards.input, output_guard=guards.output, record_question=record)


def build_request_guards(settings: Settings, store: VectorStore, embedder: RequestMemoEmbedder) -> Guards:
    """The input, context and output guard chains a request passes (RAG program or agent)."""
    return build_guards(settings.guards, embedder, topic_texts=_topic_sample(settings, store), load_gguf=load_local_model)


def build_retrieval(settings: Settings, store: VectorStore, *, embedder: RequestMemoEmbedder | None = None,
                    guards: Guards | None = None, where: SearchFilter | None = None) -> GuardedRetrieval:
    """GuardedRetrieval as configured: the RAG program and the agent's search_documents tool share it. Without
    `guards` the request guards are built here, so a passage is always context-guarded. `where` restricts every
    search (metadata filters). A collection that records another embedder than the configured one is refused."""
    check_query_embedder(settings, store)
    if embedder is None:
        embedder = RequestMemoEmbedder(load_embedder(settings.embedder, settings.embedder_dtype))
    if guards is None:
        guards = build_request_guards(settings, store, embedder)
    retriever = HybridRetriever(
        store,
        settings.collection,
        embedder,
        mode=settings.retrieval.mode,
        k=settings.retrieval.k,
        prefetch_k=settings.retrieval.prefetch_k,
        filter=where,
    )
    reranker = make_reranker(settings.rerank.kind, settings.rerank.model, embedder)
    record = settings.tracing.record_questions
    return GuardedRetrieval(retriever, reranker, guards.context, top_n=settings.rerank.top_n, record_query=record)


def check_query_embedder(settings: Settings, store: VectorStore) -> None:
    """Refuse, before any model loads, to embed questions with another embedder than the collection records."""
    if store.has_collection(settings.collection):
        record = read_record(store, settings.collection)
        if record is not None:
            check_embedder(record, settings.collection, settings.embedder)


def build_tools(settings: Settings, store: VectorStore, retrieval: GuardedRetrieval | None = None,
                extra: Iterable[Tool] = ()) -> ToolRegistry:
    """The tools the agent may use: search_documents (over `retrieval`, built as configured when None), the
    calculator, the SQL functions (unless tools.sql.enabled is false) and `extra` (MCP tools), filtered by
    tools.allow. An allow-list naming an unknown tool or a bad SQL function is a ConfigError now."""
    tools_settings = settings.tools
    if retrieval is None:
        retrieval = build_retrieval(settings, store)
    tools = [document_search_tool(retrieval, timeout_s=tools_settings.timeout_s), calculator]
    if tools_settings.sql.enabled:
        tools += sql_tools(tools_settings.sql.database, tools_settings.sql.functions, timeout_s=tools_settings.timeout_s)
    return ToolRegistry([*tools, *extra], allow=tools_settings.allow)


def build_agent(settings: Settings, store: VectorStore) -> Agent:
    """The agent over the configured tools, with the request guards; its MCP servers are started now (a server
    that does not start is a ConfigError naming it) and stopped by `agent.close()`."""
    embedder = RequestMemoEmbedder(load_embedder(settings.embedder, settings.embedder_dtype))
    guards = build_request_guards(settings, store, embedder)
    retrieval = build_retrieval(settings, store, embedder=embedder, guards=guards)
    servers: list[McpServerTools] = []
    try:
        for server in agent_mcp_servers(settings):
            servers.append(McpServerTools(server))
        extra = mcp_tools(servers, taken=("search_documents", "calculator"))
        registry = build_tools(settings, store, retrieval, extra=extra)
        return Agent(registry, input_guard=guards.input, context_guard=guards.context, output_guard=guards.output,
                     max_steps=settings.tools.max_steps, record_question=settings.tracing.record_questions,
                     resources=servers)
    except BaseException:
        for started in servers:
            started.close()
        raise


def agent_mcp_servers(settings: Settings) -> list[McpServerSettings]:
    """The MCP servers in tools.mcp_servers; when none are listed, Tessera's bundled one (convert_units,
    ticket_status), which the agent eval set asks about. tools.allow still decides which tools the agent may use."""
    if settings.tools.mcp_servers:
        return list(settings.tools.mcp_servers)
    return [McpServerSettings(name="tessera-tools", command=sys.executable, args=["-m", "pipeline.tools.mcp_server"])]


def _topic_sample(settings: Settings, store: VectorStore, size: int = 256) -> list[str] | None:
    """Indexed chunk texts that define what is on-topic, read only when the topic guard is on."""
    if not settings.guards.topic.enabled:
        return None
    texts = []
    for _, payload in store.scan(settings.collection, ["text", "staged"]):
        if payload.get("staged"):
            continue  # left behind by a killed ingest: not part of the index a search sees
        texts.append(payload["text"])
        if len(texts) >= size:
            break
    return texts


def configure_lm(settings: Settings) -> dspy.BaseLM:
    """Scripts only: make the configured LM (and the adapter it needs) DSPy's default."""
    lm = make_lm(settings.lm, max_tokens=settings.max_tokens, dtype=settings.embedded_dtype)
    adapter = adapter_for(settings.lm)
    dspy.configure(lm=lm, **({"adapter": adapter} if adapter is not None else {}))
    return lm
