"""Run guards in order on one text or a batch, each text getting its own verdict within its own timeout.

Every guard call runs on its own daemon thread: a hung guard ties up only that thread, never the time of other
guards, and never keeps the process from exiting (a pool's workers would be joined at exit, and a few hung calls
would fill it). A text a guard could not judge (it raised or timed out) gets the layer's fail mode as a verdict
marked unchecked, so "let through unchecked" is never mistaken for "checked and clean". Every layer's verdicts
become a trace span, so a blocked request shows which layer stopped it and why.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from guardrails.base import Guard, GuardContext, GuardResult, Stage

log = logging.getLogger(__name__)

FailMode = Literal["open", "closed"]

# A guard with this many calls still running past their timeout is presumed dead: further calls fail at once
# instead of each waiting out its timeout and leaving one more thread behind.
MAX_OVERDUE_CALLS = 8

_overdue_lock = threading.Lock()
_overdue: Counter[int] = Counter()  # id(guard) -> its calls that outlived their timeout and are still running


@dataclass(frozen=True)
class Layer:
    """A guard with its fail mode ("closed": an error blocks, "open": an error lets the text through) and the
    seconds each text's check may take. A batch (`check_many`) that overruns it is retried text by text, so a layer
    takes at most twice `timeout_s`."""

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

    @property
    def unchecked(self) -> list[str]:
        """The guards that could not judge this text (they raised or timed out); empty when every guard did."""
        return [result.guard for result in self.results if not result.checked]


class _GuardCall:
    """One call into a guard on a daemon thread, with the result or the exception it ended with."""

    def __init__(self, guard: Guard, call: Callable[[], Any]) -> None:
        self._key = id(guard)
        self._done = threading.Event()
        self._overdue = False
        self.value: Any = None
        self.error: Exception | None = None
        # The call runs in a copy of the caller's context, so what a request scopes in context variables (the
        # per-request embedding memo, DSPy's settings) holds inside the guard too.
        context = contextvars.copy_context()
        threading.Thread(target=context.run, args=(self._run, call), name=f"tessera-guard-{guard.name}",
                         daemon=True).start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self.value = call()
        except Exception as exc:  # noqa: BLE001 - handed to the waiting chain, which applies the fail mode
            self.error = exc
        finally:
            with _overdue_lock:
                self._done.set()
                if self._overdue:
                    _overdue[self._key] -= 1

    def wait(self, deadline: float) -> bool:
        """True when the call ended by `deadline` (a `time.monotonic()` value); if not, it is counted as overdue."""
        if self._done.wait(max(0.0, deadline - time.monotonic())):
            return True
        with _overdue_lock:
            if self._done.is_set():
                return True
            self._overdue = True
            _overdue[self._key] += 1
        return False


def _overdue_calls(guard: Guard) -> int:
    with _overdue_lock:
        return _overdue[id(guard)]


def _describe(exc: Exception, texts: Sequence[str]) -> str:
    """`raised Type: message` without the checked texts: an exception may quote its input, and reasons reach logs
    and traces, which must never hold what the PII guard would have redacted."""
    message = str(exc)
    for text in texts:
        if text:
            message = message.replace(text, "[text]")
    return f"raised {type(exc).__name__}: {message}"


class GuardChain:
    """Guards for one stage (input, context or output), run in order; the first block stops the chain.

    A guard that rewrites the text (PII redaction) hands the rewritten text to the guards after it.
    """

    def __init__(self, stage: Stage, layers: Sequence[Layer]) -> None:
        self.stage = stage
        self.layers = list(layers)

    def __bool__(self) -> bool:
        return bool(self.layers)

    @property
    def fingerprint(self) -> str | None:
        """A short string that changes whenever a verdict of this chain could: the stage and every layer's guard
        fingerprint (its kind, version and configuration). None when some guard has none (its verdict may depend on
        more than the text, or nobody declared what it depends on), so its verdicts must not be stored."""
        parts = [getattr(layer.guard, "fingerprint", None) for layer in self.layers]
        if not parts or any(part is None for part in parts):
            return None
        return hashlib.sha1("\x00".join([self.stage, *parts]).encode("utf-8")).hexdigest()[:16]

    def split_fingerprinted(self) -> tuple[GuardChain, GuardChain]:
        """(the leading layers whose guards have a fingerprint, the layers after them): the first part's verdict on
        a text can be computed once and stored with it, the rest must run every time."""
        head = 0
        while head < len(self.layers) and getattr(self.layers[head].guard, "fingerprint", None) is not None:
            head += 1
        return GuardChain(self.stage, self.layers[:head]), GuardChain(self.stage, self.layers[head:])

    def run(self, text: str, context: GuardContext | None = None) -> ChainResult:
        return self.run_many([text], context)[0]

    def run_many(self, texts: Sequence[str], context: GuardContext | None = None) -> list[ChainResult]:
        """`run` on several texts, each layer checking all still-allowed texts together: in one `check_many` call
        when the guard has it (the injection guard embeds every passage in a single batch) and that call ends in
        time, otherwise one call per text."""
        outcomes = [ChainResult(True, text) for text in texts]
        for layer in self.layers:
            pending = [outcome for outcome in outcomes if outcome.allowed]
            if not pending:
                break
            for outcome, result in zip(pending, self._run_layer(layer, [o.text for o in pending], context), strict=True):
                outcome.results.append(result)
                if result.redacted_text is not None:
                    outcome.text = result.redacted_text
                outcome.allowed = result.allowed
        return outcomes

    def _run_layer(self, layer: Layer, texts: list[str], context: GuardContext | None) -> list[GuardResult]:
        import mlflow  # on first use: importing MLflow costs ~2 s, and `import guardrails` should not

        with mlflow.start_span(name=f"guard.{self.stage}.{layer.guard.name}", span_type="GUARDRAIL") as current:
            current.set_inputs({"texts": len(texts), "chars": sum(map(len, texts))})
            results = self._check(layer, texts, context)
            verdicts = [
                {"allowed": r.allowed, "checked": r.checked, "category": r.category, "reason": r.reason,
                 "scores": dict(r.scores)}
                for r in results
            ]
            current.set_outputs(verdicts[0] if len(verdicts) == 1 else verdicts)
        failed = [result for result in results if not result.checked]
        if failed:
            went = "they go on unchecked" if layer.fail == "open" else "they are blocked"
            reasons = "; ".join(sorted({result.reason for result in failed}))
            log.warning("%s guard %s could not check %d of %d text(s), %s: %s",
                        self.stage, layer.guard.name, len(failed), len(texts), went, reasons)
        return results

    def _check(self, layer: Layer, texts: list[str], context: GuardContext | None) -> list[GuardResult]:
        guard = layer.guard
        overdue = _overdue_calls(guard)
        if overdue >= MAX_OVERDUE_CALLS:
            return [self._unchecked(layer, f"still has {overdue} calls running past their timeout")] * len(texts)
        if len(texts) > 1 and hasattr(guard, "check_many"):
            batch = _GuardCall(guard, lambda: list(guard.check_many(texts)))
            finished = batch.wait(time.monotonic() + layer.timeout_s)
            if finished and batch.error is None and len(batch.value) == len(texts):
                return batch.value
            log.info("%s guard %s: a batch of %d texts %s; checking each text on its own",
                     self.stage, guard.name, len(texts), "failed" if finished else "timed out")
        deadline = time.monotonic() + layer.timeout_s
        calls = [_GuardCall(guard, functools.partial(guard.check, text, context)) for text in texts]
        return [self._verdict(layer, call, deadline, text) for call, text in zip(calls, texts)]

    def _verdict(self, layer: Layer, call: _GuardCall, deadline: float, text: str) -> GuardResult:
        if not call.wait(deadline):
            return self._unchecked(layer, f"timed out after {layer.timeout_s:g}s")
        if call.error is not None:
            return self._unchecked(layer, _describe(call.error, [text]))
        return call.value

    @staticmethod
    def _unchecked(layer: Layer, what: str) -> GuardResult:
        name = layer.guard.name
        reason = f"guard {name} {what}; failing {layer.fail}"
        if layer.fail == "open":
            return GuardResult.allow(name, category="guard_error", reason=reason, checked=False)
        return GuardResult.block(name, "guard_error", reason, checked=False)
