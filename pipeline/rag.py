"""The RAG program: retrieve → rerank → generate, as a dspy.Module whose predictor optimizers can tune."""

from __future__ import annotations

import logging
import time

import dspy

from pipeline.documents import Hit
from pipeline.errors import QueryError
from pipeline.rerank import Reranker
from pipeline.retriever import HybridRetriever
from signatures import AnswerFromContext

log = logging.getLogger(__name__)


def format_context(hits: list[Hit]) -> str:
    """Numbered passages, each labelled with its file and heading, as the LM sees them."""
    blocks = []
    for number, hit in enumerate(hits, start=1):
        chunk = hit.chunk
        where = chunk.source + (f" > {chunk.heading_path}" if chunk.heading else "")
        blocks.append(f"[{number}] ({where})\n{chunk.text.strip()}")
    return "\n\n".join(blocks)


def check_question(question: object, max_chars: int) -> str:
    """Reject what cannot be answered before any search or LM call."""
    if not isinstance(question, str) or not question.strip():
        raise QueryError("The question is empty. Ask a question in plain text, for example: 'How do I rotate the API keys?'")
    if len(question) > max_chars:
        raise QueryError(
            f"The question is {len(question):,} characters long; the limit is {max_chars:,}. "
            "Shorten it, or raise max_question_chars in tessera.yaml."
        )
    return question.strip()


class RAG(dspy.Module):
    """Answer a question from the indexed documents, citing the chunks the LM was given."""

    def __init__(
        self,
        retriever: HybridRetriever,
        reranker: Reranker | None = None,
        *,
        top_n: int = 3,
        max_question_chars: int = 4000,
    ) -> None:
        super().__init__()
        self.retriever = retriever
        self.reranker = reranker
        self.top_n = top_n
        self.max_question_chars = max_question_chars
        self.generate = dspy.Predict(AnswerFromContext)

    def forward(self, question: str) -> dspy.Prediction:
        question = check_question(question, self.max_question_chars)
        timings: dict[str, float] = {}

        started = time.perf_counter()
        hits = self.retriever.retrieve(question)
        timings["retrieve"] = time.perf_counter() - started

        started = time.perf_counter()
        if self.reranker is not None:
            hits = self.reranker.rerank(question, hits, self.top_n)
        hits = hits[: self.top_n]
        timings["rerank"] = time.perf_counter() - started

        started = time.perf_counter()
        if hits:
            answer = self.generate(context=format_context(hits), question=question).answer
        else:
            answer = "The indexed documents contain nothing about this question."
        timings["generate"] = time.perf_counter() - started
        log.debug("answered in %s", timings)

        return dspy.Prediction(
            answer=answer,
            citations=[hit.chunk.id for hit in hits],
            contexts=[hit.chunk.text for hit in hits],
            hits=hits,
            timings=timings,
        )
