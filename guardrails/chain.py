"""Run guards in order on one text, applying each layer's fail mode when a guard raises or times out.

Every verdict becomes its own trace span, so a blocked request shows which layer stopped it and why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Literal

from guardrails.base import Guard, GuardContext, GuardResult, Stage
from pipeline.tracing import span

log = logging.getLogger(__name__)

FailMode = Literal["open", "closed"]

# Guards run on a worker thread so a hung guard model cannot hang the request past its timeout.
_EXECUTOR = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tessera-guard")


@dataclass(frozen=True)
class Layer:
    """A guard with its fail mode ("closed": an error blocks, "open": an error lets the text through) and timeout."""

    guard: Guard
    fail: FailMode = "closed"
    timeout_s: float = 10.0


@dataclass
class ChainResult:
    """The outcome of a chain on one text: the first blocking verdict, if any, and the text after redaction."""

    allowed: bool
    text: str
    results: list[GuardResult] = field(default_factory=list)

    @property
    def blocked_by(self) -> GuardResult | None:
        return next((result for result in self.results if not result.allowed), None)

    @property
    def category(self) -> str | None:
        blocked = self.blocked_by
        return blocked.category if blocked else None


class GuardChain:
    """Guards for one stage (input, context or output), run in order; the first block stops the chain.

    A guard that rewrites the text (PII redaction) hands the rewritten text to the guards after it.
    """

    def __init__(self, stage: Stage, layers: Sequence[Layer]) -> None:
        self.stage = stage
        self.layers = list(layers)

    def __bool__(self) -> bool:
        return bool(self.layers)

    def run(self, text: str, context: GuardContext | None = None) -> ChainResult:
        results: list[GuardResult] = []
        current = text
        for layer in self.layers:
            result = self._run_layer(layer, current, context)
            results.append(result)
            if result.redacted_text is not None:
                current = result.redacted_text
            if not result.allowed:
                return ChainResult(False, current, results)
        return ChainResult(True, current, results)

    def _run_layer(self, layer: Layer, text: str, context: GuardContext | None) -> GuardResult:
        name = layer.guard.name
        with span(f"guard.{self.stage}.{name}", "GUARDRAIL", inputs={"chars": len(text)}) as current:
            try:
                result = _EXECUTOR.submit(layer.guard.check, text, context).result(timeout=layer.timeout_s)
            except FutureTimeout:
                result = self._failed(layer, f"timed out after {layer.timeout_s:g}s")
            except Exception as exc:  # noqa: BLE001 - any guard failure is handled by the layer's fail mode
                result = self._failed(layer, f"raised {type(exc).__name__}: {exc}")
            current.set_outputs(
                {"allowed": result.allowed, "category": result.category, "reason": result.reason, "scores": dict(result.scores)}
            )
        return result

    def _failed(self, layer: Layer, what: str) -> GuardResult:
        name = layer.guard.name
        reason = f"guard {name} {what}; failing {layer.fail}"
        log.warning("%s guard %s", self.stage, reason)
        if layer.fail == "open":
            return GuardResult.allow(name, category="guard_error", reason=reason)
        return GuardResult.block(name, "guard_error", reason)
