"""The guarded RAG program: input guard → GuardedRetrieval (retrieve → rerank → context guard) → generate → output guard.

It is one dspy.Module whose predictor optimizers can tune; what DSPy optimizes is the guarded program.
"""

from __future__ import annotations

import copy
import logging
import time

import dspy

from guardrails.base import GuardContext
from guardrails.chain import GuardChain
from pipeline.documents import Hit
from pipeline.errors import QueryError
from pipeline.retrieval.guarded import GuardedRetrieval
from pipeline.tracing import span
from signatures import AnswerFromContext

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
        retrieval: GuardedRetrieval,
        *,
        input_guard: GuardChain | None = None,
        output_guard: GuardChain | None = None,
    ) -> None:
        super().__init__()
        self.retrieval = retrieval
        self.input_guard = input_guard
        self.output_guard = output_guard
        self.generate = dspy.Predict(AnswerFromContext)

    # Read-only resources every copy of the program shares (optimizers copy programs many times).
    _shared = ("retrieval", "input_guard", "output_guard")

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

        if self.input_guard:
            started = time.perf_counter()
            checked = self.input_guard.run(question)
            timings["input_guard"] = time.perf_counter() - started
            verdicts.extend(checked.results)
            if not checked.allowed:
                return self._prediction(refusal(checked.category), [], timings, verdicts, blocked=True)
            question = checked.text

        retrieved = self.retrieval(question)
        hits = retrieved.hits
        timings.update(retrieved.timings)
        verdicts.extend(retrieved.verdicts)

        started = time.perf_counter()
        if hits:
            with span("generate", "CHAT_MODEL", inputs={"question": question, "passages": len(hits)}) as current:
                answer = self.generate(context=format_context(hits), question=question).answer
                current.set_outputs({"answer": answer})
        else:
            answer = NO_CONTEXT_ANSWER
        timings["generate"] = time.perf_counter() - started

        blocked = False
        if self.output_guard and hits:
            started = time.perf_counter()
            ids = [hit.chunk.id for hit in hits]
            checked = self.output_guard.run(
                answer, GuardContext(question=question, contexts=[h.chunk.text for h in hits], context_ids=ids, citations=ids)
            )
            timings["output_guard"] = time.perf_counter() - started
            verdicts.extend(checked.results)
            blocked = not checked.allowed
            answer = refusal(checked.category) if blocked else checked.text
        log.debug("answered in %s", timings)
        return self._prediction(answer, [] if blocked else hits, timings, verdicts, blocked=blocked)

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
