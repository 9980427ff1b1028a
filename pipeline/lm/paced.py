"""A scripted LM with a fixed latency that streams word by word: serving tests and load benchmarks measure the
serving path with it instead of a real LM.

`scripted/<ms>` (for example `scripted/50`) names it: every call takes about `<ms>` milliseconds and answers as
`FieldLM` does (the answer is the first sentence of the context). Streamed, the completion arrives in one delta per
word, the latency spread over them, so a client sees several deltas and the first one early.
"""

from __future__ import annotations

import re
import time

from dspy.clients.engines.dummy_engine import AsyncDummyEngine
from dspy.lm15 import StreamDeltaEvent, StreamEndEvent, StreamStartEvent, TextDelta

from pipeline.errors import ConfigError
from pipeline.lm.scripted import FieldLM, _FieldEngine

SCRIPTED_PREFIX = "scripted/"
MAX_LATENCY_MS = 600_000
_WORDS = re.compile(r"\s*\S+")


def is_scripted(model: str) -> bool:
    return model.startswith(SCRIPTED_PREFIX)


def scripted_lm(model: str) -> PacedLM:
    """The LM a `scripted/<ms>` string names; ConfigError, with the form to use, for anything else."""
    latency = model.removeprefix(SCRIPTED_PREFIX)
    if not is_scripted(model) or not latency.isdigit() or int(latency) > MAX_LATENCY_MS:
        raise ConfigError(
            f"{model!r} is not a scripted LM. Write scripted/<milliseconds per call>, for example scripted/50 "
            f"(0 to {MAX_LATENCY_MS})."
        )
    return PacedLM(int(latency) / 1000)


class PacedLM(FieldLM):
    """`FieldLM` that takes `latency_s` per call and streams its completion word by word."""

    def __init__(self, latency_s: float = 0.0) -> None:
        super().__init__()
        self.latency_s = latency_s
        self.model = f"{SCRIPTED_PREFIX}{round(latency_s * 1000)}"
        self._engine_spec = _PacedEngine(self)
        self._async_engine_spec = AsyncDummyEngine(self._engine_spec)

    def copy(self, **kwargs):
        copied = super().copy(**kwargs)
        copied._engine_spec = _PacedEngine(copied)
        copied._async_engine_spec = AsyncDummyEngine(copied._engine_spec)
        return copied


class _PacedEngine(_FieldEngine):
    # Without DSPy's legacy shortcut the LM takes canonical requests, so a streaming caller reaches `stream`.
    complete_legacy = None

    def complete(self, request):
        response = super().complete(request)
        time.sleep(self.owner.latency_s)
        return response

    def stream(self, request):
        response = super().complete(request)
        text = response.message.parts[0].text
        words = _WORDS.findall(text) or [text]
        words[-1] += text[sum(map(len, words)):]  # trailing whitespace, so the deltas join to the completion
        pause = self.owner.latency_s / len(words)
        yield StreamStartEvent(id=None, model=response.model)
        for word in words:
            time.sleep(pause)
            if word:
                yield StreamDeltaEvent(delta=TextDelta(text=word))
        yield StreamEndEvent(finish_reason=response.finish_reason, usage=response.usage)
