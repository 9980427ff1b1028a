"""What every guard shares: the verdict it returns, the interface it implements, and what it may look at."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

Stage = Literal["input", "context", "output"]


@dataclass(frozen=True)
class GuardResult:
    """One guard's verdict on one text.

    `category` names why a text was blocked or flagged (`prompt_injection`, `pii`, `size`, `encoding`,
    `deny_list`, `off_topic`, `unsafe:S1`, `ungrounded`, `bad_citation`, `guard_error`, …); `scores` holds
    the numbers behind the verdict; `redacted_text` is the text with what the guard removed replaced by
    placeholders (PII), so the original never has to leave the guard. `checked` is False when the guard never
    judged the text (it raised or timed out) and the verdict is only the layer's fail mode: an allowed verdict
    that is not checked lets the text through unchecked.
    """

    allowed: bool
    guard: str
    category: str | None = None
    reason: str = ""
    scores: Mapping[str, float] = field(default_factory=dict)
    redacted_text: str | None = None
    checked: bool = True

    @classmethod
    def allow(cls, guard: str, *, scores: Mapping[str, float] | None = None, redacted_text: str | None = None,
              category: str | None = None, reason: str = "", checked: bool = True) -> "GuardResult":
        return cls(True, guard, category, reason, dict(scores or {}), redacted_text, checked)

    @classmethod
    def block(cls, guard: str, category: str, reason: str, *, scores: Mapping[str, float] | None = None,
              redacted_text: str | None = None, checked: bool = True) -> "GuardResult":
        return cls(False, guard, category, reason, dict(scores or {}), redacted_text, checked)


@dataclass(frozen=True)
class GuardContext:
    """What a guard may need beyond the text it checks: the question, the retrieved passages and their ids."""

    question: str | None = None
    contexts: Sequence[str] = ()
    context_ids: Sequence[str] = ()
    citations: Sequence[str] = ()


class Guard(Protocol):
    """Checks one text (a question, a retrieved passage or an answer) and returns a verdict; never raises on
    user text. A guard that fails internally may raise: the chain applies the configured fail mode."""

    name: str

    def check(self, text: str, context: GuardContext | None = None) -> GuardResult: ...


class TextEncoder(Protocol):
    """What the learned guards need from an embedder: L2-normalised float32 vectors, one row per text."""

    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...
