"""The guarded RAG program: input guard → retrieve → rerank → context guard → generate → output guard.

It is one dspy.Module whose predictor optimizers can tune; what DSPy optimizes is the guarded program.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from typing import TYPE_CHECKING

import dspy

from pipeline.documents import Hit
from pipeline.errors import QueryError
from pipeline.rerank import Reranker
from pipeline.retriever import HybridRetriever
from pipeline.tracing import span
from signatures import AnswerFromContext

if TYPE_CHECKING:
    from guardrails.policy import Guards

log = logging.getLogger(__name__)

NO_CONTEXT_ANSWER = "The indexed documents contain nothing about this question."


def format_context(hits: list[Hit]) -> str:
    """Numbered passages, each labelled with its file and heading, as the LM sees them."""
    blocks = []
    for number, hit in enumerate(hits, start=1):
        chunk = hit.chunk
        where = chunk.source + (f" > {chunk.heading_path}" if chunk.heading else "")
        blocks.append(f"[{number}] ({where})\n{chunk.text.strip()}")
    return "\n\n".join(blocks)


def check_question(question: object) -> str:
    """Reject a question that is not text or is empty; size and content limits are the input guards' job."""
    if not isinstance(question, str) or not question.strip():
        raise QueryError("The question is empty. Ask a question in plain text, for example: 'How do I rotate the API keys?'")
    return question.strip()


def refusal(category: str | None) -> str:
    return f"blocked: {category or 'policy'}"


class RAG(dspy.Module):
    """Answer a question from the indexed documents, citing the chunks the LM was given."""

    def __init__(
        self,
        retriever: HybridRetriever,
        reranker: Reranker | None = None,
        *,
        guards: Guards | None = None,
        top_n: int = 3,
    ) -> None:
        super().__init__()
        self.retriever = retriever
        self.reranker = reranker
        self.guards = guards
        self.top_n = top_n
        self.generate = dspy.Predict(AnswerFromContext)

    # Read-only resources every copy of the program shares (optimizers copy programs many times).
    _shared = ("retriever", "reranker", "guards")

    def __deepcopy__(self, memo: dict) -> RAG:
        clone = self.__class__.__new__(self.__class__)
        for name, value in self.__dict__.items():
            clone.__dict__[name] = value if name in self._shared else copy.deepcopy(value, memo)
        return clone

    def forward(self, question: str) -> dspy.Prediction:
        question = check_question(question)
        with span("rag", "CHAIN", inputs={"question": question}) as root:
            prediction = self._answer(question)
            root.set_outputs({"answer": prediction.answer, "citations": prediction.citations, "blocked": prediction.blocked})
        return prediction

    def _answer(self, question: str) -> dspy.Prediction:
        timings: dict[str, float] = {}
        verdicts = []

        if self.guards is not None and self.guards.input:
            started = time.perf_counter()
            checked = self.guards.input.run(question)
            timings["input_guard"] = time.perf_counter() - started
            verdicts.extend(checked.results)
            if not checked.allowed:
                return self._prediction(refusal(checked.category), [], timings, verdicts, blocked=True)
            question = checked.text

        started = time.perf_counter()
        with span("retrieve", "RETRIEVER", inputs={"query": question}) as current:
            hits = self.retriever.retrieve(question)
            current.set_outputs([{"id": h.chunk.id, "source": h.chunk.source, "score": h.score} for h in hits])
        timings["retrieve"] = time.perf_counter() - started

        started = time.perf_counter()
        if self.reranker is not None:
            with span("rerank", "RERANKER", inputs={"query": question, "candidates": len(hits)}) as current:
                hits = self.reranker.rerank(question, hits, len(hits))
                current.set_outputs([{"id": h.chunk.id, "source": h.chunk.source, "score": h.score} for h in hits[: self.top_n]])
        timings["rerank"] = time.perf_counter() - started

        if self.guards is not None and self.guards.context:
            started = time.perf_counter()
            hits = self._guard_context(question, hits, verdicts)
            timings["context_guard"] = time.perf_counter() - started
        hits = hits[: self.top_n]

        started = time.perf_counter()
        if hits:
            with span("generate", "CHAT_MODEL", inputs={"question": question, "passages": len(hits)}) as current:
                answer = self.generate(context=format_context(hits), question=question).answer
                current.set_outputs({"answer": answer})
        else:
            answer = NO_CONTEXT_ANSWER
        timings["generate"] = time.perf_counter() - started

        blocked = False
        if self.guards is not None and self.guards.output and hits:
            from guardrails.base import GuardContext

            started = time.perf_counter()
            ids = [hit.chunk.id for hit in hits]
            checked = self.guards.output.run(
                answer, GuardContext(question=question, contexts=[h.chunk.text for h in hits], context_ids=ids, citations=ids)
            )
            timings["output_guard"] = time.perf_counter() - started
            verdicts.extend(checked.results)
            blocked = not checked.allowed
            answer = refusal(checked.category) if blocked else checked.text
        log.debug("answered in %s", timings)
        return self._prediction(answer, [] if blocked else hits, timings, verdicts, blocked=blocked)

    def _guard_context(self, question: str, hits: list[Hit], verdicts: list) -> list[Hit]:
        """Drop retrieved passages that carry an injection, redact PII in the rest; keep up to top_n clean ones."""
        from guardrails.base import GuardContext

        kept: list[Hit] = []
        start = 0
        while len(kept) < self.top_n and start < len(hits):
            # Check just enough candidates, in one batch, to fill the remaining slots.
            batch = hits[start : start + self.top_n - len(kept)]
            start += len(batch)
            outcomes = self.guards.context.run_many([hit.chunk.text for hit in batch], GuardContext(question=question))
            for hit, checked in zip(batch, outcomes):
                verdicts.extend(checked.results)
                if not checked.allowed:
                    log.warning("dropped passage %s from %s: %s", hit.chunk.id, hit.chunk.source, checked.category)
                    continue
                if checked.text != hit.chunk.text:
                    hit = Hit(dataclasses.replace(hit.chunk, text=checked.text), hit.score)
                kept.append(hit)
        return kept

    @staticmethod
    def _prediction(answer: str, hits: list[Hit], timings: dict, verdicts: list, *, blocked: bool) -> dspy.Prediction:
        return dspy.Prediction(
            answer=answer,
            citations=[hit.chunk.id for hit in hits],
            contexts=[hit.chunk.text for hit in hits],
            hits=hits,
            timings=timings,
            blocked=blocked,
            guard_results=verdicts,
        )
