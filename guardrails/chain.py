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

    def run_many(self, texts: Sequence[str], context: GuardContext | None = None) -> list[ChainResult]:
        """`run` on several texts, each layer checking all still-allowed texts in one call (`check_many` when the
        guard has it: the injection guard embeds every passage in a single batch)."""
        outcomes = [ChainResult(True, text) for text in texts]
        for layer in self.layers:
            pending = [outcome for outcome in outcomes if outcome.allowed]
            if not pending:
                break
            for outcome, result in zip(pending, self._run_batch(layer, [o.text for o in pending], context)):
                outcome.results.append(result)
                if result.redacted_text is not None:
                    outcome.text = result.redacted_text
                outcome.allowed = result.allowed
        return outcomes

    def _run_layer(self, layer: Layer, text: str, context: GuardContext | None) -> GuardResult:
        return self._run_batch(layer, [text], context)[0]

    def _run_batch(self, layer: Layer, texts: list[str], context: GuardContext | None) -> list[GuardResult]:
        guard = layer.guard
        import mlflow  # on first use: importing MLflow costs ~2 s, and `import guardrails` should not

        with mlflow.start_span(name=f"guard.{self.stage}.{guard.name}", span_type="GUARDRAIL") as current:
            current.set_inputs({"texts": len(texts), "chars": sum(map(len, texts))})
            if hasattr(guard, "check_many"):
                call = lambda: guard.check_many(texts)  # noqa: E731
            else:
                call = lambda: [guard.check(text, context) for text in texts]  # noqa: E731
            try:
                results = _EXECUTOR.submit(call).result(timeout=layer.timeout_s)
            except FutureTimeout:
                results = [self._failed(layer, f"timed out after {layer.timeout_s:g}s")] * len(texts)
            except Exception as exc:  # noqa: BLE001 - any guard failure is handled by the layer's fail mode
                results = [self._failed(layer, f"raised {type(exc).__name__}: {exc}")] * len(texts)
            verdicts = [
                {"allowed": r.allowed, "category": r.category, "reason": r.reason, "scores": dict(r.scores)} for r in results
            ]
            current.set_outputs(verdicts[0] if len(verdicts) == 1 else verdicts)
        return results

    def _failed(self, layer: Layer, what: str) -> GuardResult:
        name = layer.guard.name
        reason = f"guard {name} {what}; failing {layer.fail}"
        log.warning("%s guard %s", self.stage, reason)
        if layer.fail == "open":
            return GuardResult.allow(name, category="guard_error", reason=reason)
        return GuardResult.block(name, "guard_error", reason)
