"""GuardedRetrieval: retrieve → rerank → context guard → top n, the one way Tessera finds passages for a question.

The RAG program and the agent's document-search tool both call it, so a poisoned passage is dropped and PII in a
passage is redacted whichever of them asked. A passage whose context-guard verdict was stored at ingest under the
current guard configuration (pipeline.retrieval.verdicts) is not judged again: its stored outcome (PII already
redacted) is looked up, and only layers after the stored ones would run on it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

from guardrails.base import GuardContext, GuardResult
from guardrails.chain import ChainResult, GuardChain
from pipeline.documents import Hit
from pipeline.retrieval.rerank import Reranker
from pipeline.retrieval.retriever import HybridRetriever
from pipeline.retrieval.verdicts import ContextVerdicts, VerdictLookup
from pipeline.store.base import SearchFilter
from pipeline.tracing import annotate, span

log = logging.getLogger(__name__)

STORED_VERDICTS_ATTRIBUTE = "guard.context.stored"
"""Span attribute: [{"id", "allowed", "category"}] for each passage whose context verdict was read from the index."""


@dataclass
class Retrieved:
    """The passages to hand an LM (clean, redacted, best first), every guard verdict, and seconds per stage.

    `unchecked` counts the passages in `hits` that some context guard could not judge (it raised or timed out and
    fails open): they are handed on, but nobody checked them.
    """

    hits: list[Hit]
    verdicts: list[GuardResult] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    unchecked: int = 0


def _hit_summary(hits: list[Hit]) -> list[dict]:
    return [{"id": h.chunk.id, "source": h.chunk.source, "score": h.score} for h in hits]


class GuardedRetrieval:
    """The top `top_n` passages for a query that the context guard lets through, after an optional rerank.

    With `record_query=False` the trace spans carry no query text, only counts and chunk ids.
    """

    def __init__(
        self,
        retriever: HybridRetriever,
        reranker: Reranker | None = None,
        context_guard: GuardChain | None = None,
        *,
        top_n: int = 3,
        record_query: bool = True,
    ) -> None:
        self.retriever = retriever
        self.reranker = reranker
        self.context_guard = context_guard
        self.top_n = top_n
        self.record_query = record_query
        self.stored_verdicts = ContextVerdicts(context_guard) if context_guard else None
        self.lookup = VerdictLookup(retriever.store, retriever.collection) if self.stored_verdicts else None

    def __call__(self, query: str, *, filter: SearchFilter | None = None) -> Retrieved:
        result = Retrieved(hits=[])
        started = time.perf_counter()
        recorded = {"query": query} if self.record_query else {}
        with span("retrieve", "RETRIEVER", inputs=recorded) as current:
            hits = self.retriever.retrieve(query, filter=filter)
            current.set_outputs(_hit_summary(hits))
        result.timings["retrieve"] = time.perf_counter() - started

        started = time.perf_counter()
        if self.reranker is not None:
            with span("rerank", "RERANKER", inputs={**recorded, "candidates": len(hits)}) as current:
                hits = self.reranker.rerank(query, hits, len(hits))
                current.set_outputs(_hit_summary(hits[: self.top_n]))
        result.timings["rerank"] = time.perf_counter() - started

        if self.context_guard:
            started = time.perf_counter()
            hits = self._guard(query, hits, result)
            result.timings["context_guard"] = time.perf_counter() - started
        result.hits = hits[: self.top_n]
        return result

    def _guard(self, query: str, hits: list[Hit], result: Retrieved) -> list[Hit]:
        """Drop passages that carry an injection, redact PII in the rest; keep up to top_n clean ones, counting
        those a guard could not check. Log lines name chunks, never their text or the query."""
        kept: list[Hit] = []
        start = 0
        while len(kept) < self.top_n and start < len(hits):
            # Check just enough candidates, in one batch, to fill the remaining slots.
            batch = hits[start : start + self.top_n - len(kept)]
            start += len(batch)
            for hit, checked in zip(batch, self._judge(query, batch)):
                result.verdicts.extend(checked.results)
                if not checked.allowed:
                    log.warning("dropped passage %s from %s: %s", hit.chunk.id, hit.chunk.source, checked.category)
                    continue
                if checked.unchecked:
                    result.unchecked += 1
                    log.warning("passage %s from %s goes on unchecked by %s", hit.chunk.id, hit.chunk.source,
                                ", ".join(checked.unchecked))
                if checked.text != hit.chunk.text:
                    hit = Hit(dataclasses.replace(hit.chunk, text=checked.text), hit.score)
                kept.append(hit)
        return kept

    def _judge(self, query: str, hits: list[Hit]) -> list[ChainResult]:
        """The context chain's outcome per hit: where a current outcome is stored, that one and then only the layers
        after the stored ones (none in the default chain); elsewhere the whole chain. Each group runs as one batch."""
        context = GuardContext(question=query)
        outcomes = self._stored(hits)
        fresh = [index for index in range(len(hits)) if index not in outcomes]
        if fresh:
            outcomes.update(zip(fresh, self.context_guard.run_many([hits[i].chunk.text for i in fresh], context)))
        live = self.stored_verdicts.live if self.stored_verdicts else None
        passed = [index for index in range(len(hits)) if index not in fresh and outcomes[index].allowed]
        if live and passed:
            for index, outcome in zip(passed, live.run_many([outcomes[i].text for i in passed], context)):
                stored = outcomes[index]
                outcomes[index] = ChainResult(outcome.allowed, outcome.text, [*stored.results, *outcome.results])
        return [outcomes[index] for index in range(len(hits))]

    def _stored(self, hits: list[Hit]) -> dict[int, ChainResult]:
        """Position -> the outcome stored at ingest under the current guard configuration, recorded on the span of
        the stage that asked (the RAG program's, the search tool's) rather than in a span of its own: a lookup of
        well under a millisecond is not worth a 0.4 ms span."""
        if self.lookup is None:
            return {}
        found = self.lookup.get(hit.chunk.id for hit in hits)
        stored = {index: outcome for index, hit in enumerate(hits)
                  if (outcome := self.stored_verdicts.read(found[hit.chunk.id], hit.chunk.text)) is not None}
        if stored:
            annotate(STORED_VERDICTS_ATTRIBUTE, [
                {"id": hits[index].chunk.id, "allowed": outcome.allowed, "category": outcome.category}
                for index, outcome in stored.items()
            ])
        return stored
