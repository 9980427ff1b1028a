"""The guarded RAG program: input guard → GuardedRetrieval (retrieve → rerank → context guard) → generate → output guard.

It is one dspy.Module whose predictor optimizers can tune; what DSPy optimizes is the guarded program. The question is
redacted before anything traces it.
"""

from __future__ import annotations

import copy
import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import dspy

from guardrails.base import GuardContext, GuardResult
from guardrails.chain import GuardChain
from pipeline.documents import Hit
from pipeline.errors import QueryError
from pipeline.retrieval.guarded import GuardedRetrieval
from pipeline.retrieval.memo import one_embedding_per_text
from pipeline.tracing import span
from signatures import AnswerFromContext

log = logging.getLogger(__name__)

NO_CONTEXT_ANSWER = "The indexed documents contain nothing about this question."
QUESTION_NOT_RECORDED = "[not recorded]"


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


@dataclass(frozen=True)
class _Screened:
    """The question after the input guard, handed from `RAG.__call__` to its `forward` beside DSPy's call."""

    program: RAG
    root: Any  # the program's root span
    verdicts: list[GuardResult]
    timings: dict[str, float]
    refused: str | None  # the answer when the input guard blocked the question, else None
    unchecked: bool  # it goes on although an input guard could not judge it


_SCREENED: ContextVar[_Screened | None] = ContextVar("tessera_screened_question", default=None)


class RAG(dspy.Module):
    """Answer a question from the indexed documents, citing the chunks the LM was given.

    Calling the program screens the question before anything records it: it is checked and run through the input
    guard first, and only the text the guard lets through (PII redacted) reaches a trace span, DSPy's callbacks
    (MLflow autolog) or the LM. A blocked question is never recorded; with `record_question=False` no question
    text is recorded at all (Tessera's spans carry counts, and DSPy's callbacks are off inside the program, since
    their LM spans would hold the prompt).
    """

    def __init__(
        self,
        retrieval: GuardedRetrieval,
        *,
        input_guard: GuardChain | None = None,
        output_guard: GuardChain | None = None,
        record_question: bool = True,
    ) -> None:
        super().__init__()
        self.retrieval = retrieval
        self.input_guard = input_guard
        self.output_guard = output_guard
        self.record_question = record_question
        self.generate = dspy.Predict(AnswerFromContext)

    # Read-only resources every copy of the program shares (optimizers copy programs many times).
    _shared = ("retrieval", "input_guard", "output_guard")

    def __deepcopy__(self, memo: dict) -> RAG:
        clone = self.__class__.__new__(self.__class__)
        for name, value in self.__dict__.items():
            clone.__dict__[name] = value if name in self._shared else copy.deepcopy(value, memo)
        return clone

    def __call__(self, question: str) -> dspy.Prediction:
        # dspy.Module.__call__ hands its arguments to every DSPy callback (MLflow autolog records them), so the
        # question is screened before it and only the screened text is passed on. What forward returns is returned
        # untouched: optimizers (GEPA) swap forward for one that returns more than a prediction.
        question = check_question(question)
        # The input guard and the retriever embed the same question: once per request (pipeline.retrieval.memo).
        with one_embedding_per_text(), span("rag", "CHAIN") as root:
            timings: dict[str, float] = {}
            checked = None
            if self.input_guard:
                started = time.perf_counter()
                checked = self.input_guard.run(question)
                timings["input_guard"] = time.perf_counter() - started
            allowed = checked is None or checked.allowed
            text = question if checked is None else checked.text
            passed_on = text if allowed else QUESTION_NOT_RECORDED
            root.set_inputs({"question": passed_on if self.record_question else QUESTION_NOT_RECORDED})
            screened = _Screened(
                self, root, list(checked.results) if checked else [], timings,
                refused=None if allowed else refusal(checked.category),
                unchecked=allowed and checked is not None and bool(checked.unchecked),
            )
            token = _SCREENED.set(screened)
            try:
                if self.record_question:
                    return super().__call__(question=passed_on)
                with dspy.context(callbacks=[]):
                    return super().__call__(question=passed_on)
            finally:
                _SCREENED.reset(token)

    def forward(self, question: str) -> dspy.Prediction:
        """The program after the input guard, on the screened question; calling forward directly calls the
        program, so the input guard always runs."""
        screened = _SCREENED.get()
        if screened is None or screened.program is not self:
            return self(question=question)
        if screened.refused is not None:
            return self._finish(screened, screened.refused, [], {}, [], blocked=True, unchecked=0)
        timings: dict[str, float] = {}
        verdicts = []

        retrieved = self.retrieval(question)
        hits = retrieved.hits
        timings.update(retrieved.timings)
        verdicts.extend(retrieved.verdicts)
        unchecked = retrieved.unchecked + int(screened.unchecked)

        started = time.perf_counter()
        if hits:
            recorded = {"question": question} if self.record_question else {}
            with span("generate", "CHAT_MODEL", inputs={**recorded, "passages": len(hits)}) as current:
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
            unchecked += int(not blocked and bool(checked.unchecked))
        log.debug("answered in %s", timings)
        return self._finish(screened, answer, [] if blocked else hits, timings, verdicts, blocked=blocked,
                            unchecked=unchecked)

    @staticmethod
    def _finish(screened: _Screened, answer: str, hits: list[Hit], timings: dict, verdicts: list, *, blocked: bool,
                unchecked: int) -> dspy.Prediction:
        """The prediction, with the input guard's verdicts and time; also recorded on the root span. `unchecked`
        counts the texts (question, passages, answer) that went on although a guard could not judge them (it raised
        or timed out, failing open)."""
        prediction = dspy.Prediction(
            answer=answer,
            citations=[hit.chunk.id for hit in hits],
            contexts=[hit.chunk.text for hit in hits],
            hits=hits,
            timings={**screened.timings, **timings},
            blocked=blocked,
            guard_results=[*screened.verdicts, *verdicts],
            unchecked=unchecked,
        )
        # The passages (as the context guard let them through) are what online monitoring judges faithfulness
        # against; they reveal what was asked, so they stay out of traces that keep no question text.
        passages = {"contexts": prediction.contexts} if screened.program.record_question else {}
        screened.root.set_outputs({
            "answer": answer, "citations": prediction.citations, "blocked": blocked, "unchecked": unchecked, **passages
        })
        return prediction
