"""A program run as a stream: the answer field's text as the LM writes it, then the finished prediction.

`dspy.streamify` hands over the LM's raw chunks; DSPy's own `StreamListener` knows only DSPy's adapters by class
name, so the answer is cut out of the completion here, for the ChatAdapter family (Qwen's marker-stopping adapter
included) and for the plain adapter SmolLM2 follows. The run happens on a worker thread that owns the DSPy context,
so whichever thread iterates the stream (a web server's thread pool) needs no DSPy state of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dspy

from pipeline.lm.plain_adapter import PARAGRAPH_END, PlainAdapter

ANSWER_FIELD = "answer"
CHAT_MARKER = "[[ ##"


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Finished:
    prediction: dspy.Prediction


class AnswerCutter:
    """The part of a completion so far that is surely the start of the parsed answer field.

    ChatAdapter family: the text after `[[ ## answer ## ]]` up to the next `[[ ##` marker. Plain adapter (one
    output field): the whole completion less a leading `Answer:` label, up to the first blank line. Trailing
    whitespace, and a tail that could begin a marker or label, are held back until the next chunk decides them.
    Any other adapter (JSON, XML) gives no partial text: its answer arrives with the finished prediction.
    """

    def __init__(self, adapter: Any, field: str = ANSWER_FIELD) -> None:
        if isinstance(adapter, PlainAdapter):
            self.kind = "plain"
        elif adapter is None or isinstance(adapter, dspy.ChatAdapter) and not isinstance(adapter, (dspy.JSONAdapter, dspy.XMLAdapter)):
            self.kind = "chat"
        else:
            self.kind = None
        self.start = f"[[ ## {field} ## ]]"
        self.label = field.replace("_", " ").capitalize() + ":"

    def visible(self, completion: str) -> str:
        if self.kind == "chat":
            return self._chat(completion)
        if self.kind == "plain":
            return self._plain(completion)
        return ""

    def _chat(self, completion: str) -> str:
        _, found, rest = completion.partition(self.start)
        if not found:
            return ""
        text, ended, _ = rest.partition(CHAT_MARKER)
        if not ended:
            text = _hold_prefix(text, CHAT_MARKER)
        return text.strip()

    def _plain(self, completion: str) -> str:
        text = completion.lstrip()
        probe = re.sub(r"\s+", "", text[: len(self.label) + 8]).lower()
        if len(probe) < len(self.label) and self.label.lower().replace(" ", "").startswith(probe):
            return ""  # might still become the label
        match = re.match(rf"{re.escape(self.label[:-1])}\s*:\s*", text, flags=re.IGNORECASE)
        if match:
            text = text[match.end():]
        text, ended, _ = text.partition(PARAGRAPH_END)
        if not ended:
            text = _hold_prefix(text, PARAGRAPH_END)
        return text.strip()


def _hold_prefix(text: str, marker: str) -> str:
    """`text` without a tail that could be the beginning of `marker`."""
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:size]):
            return text[:-size]
    return text


def answer_predictor_ids(program: dspy.Module, field: str = ANSWER_FIELD) -> set[int]:
    """The predictors whose output is the program's answer (RAG: generate; agent: answer)."""
    return {id(predictor) for _, predictor in program.named_predictors() if field in predictor.signature.output_fields}


def stream_program(program: dspy.Module, *, lm: dspy.BaseLM, adapter: Any,
                   around: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                   **inputs: Any) -> Iterator[Delta | Finished]:
    """Run `program(**inputs)` with `lm` and `adapter`, yielding `Delta`s of the answer text as it is written and
    one `Finished` with the prediction. `around()` is entered on the worker thread around the run (a trace span,
    a usage tracker). An exception in the program is raised from the iterator."""
    items: queue.Queue = queue.Queue()
    done = object()
    cutter = AnswerCutter(adapter)
    answer_ids = answer_predictor_ids(program)
    streaming = dspy.streamify(program, include_final_prediction_in_output_stream=True)

    async def consume() -> None:
        completion, sent = "", ""
        async for value in streaming(**inputs):
            if isinstance(value, dspy.Prediction):
                items.put(Finished(value))
            elif getattr(value, "predict_id", None) in answer_ids and getattr(value, "choices", None):
                choice = value.choices[0]
                completion += choice.delta.get("content") or ""
                shown = cutter.visible(completion)
                if len(shown) > len(sent) and shown.startswith(sent):
                    items.put(Delta(shown[len(sent):]))
                    sent = shown
                if choice.get("finish_reason"):
                    completion, sent = "", ""  # a retry (the ChatAdapter's JSON fallback) starts a new completion

    def run() -> None:
        try:
            with around(), dspy.context(lm=lm, **({"adapter": adapter} if adapter is not None else {})):
                asyncio.run(consume())
        except BaseException as exc:  # noqa: BLE001 - handed to the iterating thread, which raises it
            items.put(exc)
        finally:
            items.put(done)

    worker = threading.Thread(target=run, name="tessera-stream", daemon=True)
    worker.start()
    while (item := items.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item
