"""A cap on what a compile may spend — LM calls, tokens, estimated cost — enforced on every LM call.

`LMMeter` is a DSPy callback: it counts every LM call made inside `meter.active()` (task LM, judge LM,
proposer and reflection LMs alike) and, once a cap is reached, refuses the next call by raising
`BudgetExhausted`. That exception derives from BaseException on purpose: DSPy's optimizers catch
`Exception` per example and carry on, so an ordinary error would be scored as a failed example and the
optimizer would keep spending; BudgetExhausted goes straight up to `compile_program`, which keeps the best
program evaluated so far.

Every call counts against `max_lm_calls`, cached or not, so a re-run with a warm cache stops at the same
place and compiles the same program. Tokens and cost count what the provider billed (cache hits are free).
The cost of a call is the one DSPy records for it (LiteLLM's `response_cost`), else tokens × LiteLLM's price
table; `require_prices` refuses a cost cap up front for a model that table does not price, since a cap on
an unknown price could never stop.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import dspy
from dspy.utils.callback import BaseCallback
from dspy.utils.usage_tracker import UsageTracker

from pipeline.errors import ConfigError


class BudgetExhausted(BaseException):
    """Raised before an LM call that the budget no longer allows; stops the optimizer where it stands."""


@dataclass(frozen=True)
class Budget:
    """Caps for one compile; None means no cap on that measure."""

    max_lm_calls: int | None = None
    max_tokens: int | None = None
    max_cost: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_lm_calls", "max_tokens", "max_cost"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive (got {value}); leave it out for no cap.")

    def describe(self) -> str:
        caps = [f"{value} {label}" for value, label in ((self.max_lm_calls, "LM calls"), (self.max_tokens, "tokens"), (self.max_cost, "USD")) if value is not None]
        return ", ".join(caps) or "no cap"


@dataclass
class Candidate:
    """A program some optimizer evaluated in full with `dspy.Evaluate`, and the score it got."""

    program: dspy.Module
    score: float
    size: int


class LMMeter(BaseCallback):
    """Counts LM calls, tokens and estimated cost; refuses calls past the budget; remembers evaluated programs."""

    def __init__(self, budget: Budget | None = None) -> None:
        self.budget = budget or Budget()
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost = 0.0
        self.exhausted_by: str | None = None
        self.candidates: list[Candidate] = []
        self._evaluations: dict[str, tuple[dspy.Module, int]] = {}
        self._lms: dict[str, dspy.BaseLM] = {}
        self._seen_entries: set[str | int] = set()  # LM history entries already priced, or older than the meter
        self._watched: dict[int, dspy.BaseLM] = {}  # held, so an id is never reused by another LM
        self._in_flight = 0  # calls started and not yet ended (they hold a slot of max_lm_calls)
        self._lock = threading.Lock()

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def exhausted(self) -> bool:
        return self.exhausted_by is not None

    def check(self, *, starting: bool = False) -> None:
        """Raise BudgetExhausted when any cap is reached; `starting` also takes a call slot for a call about to start,
        so threads starting calls at once never run more than max_lm_calls between them."""
        budget = self.budget
        with self._lock:
            if budget.max_lm_calls is not None and self.calls + self._in_flight >= budget.max_lm_calls:
                self.exhausted_by = f"{self.calls + self._in_flight} LM calls (cap {budget.max_lm_calls})"
            elif budget.max_tokens is not None and self.tokens >= budget.max_tokens:
                self.exhausted_by = f"{self.tokens} tokens (cap {budget.max_tokens})"
            elif budget.max_cost is not None and self.cost >= budget.max_cost:
                self.exhausted_by = f"${self.cost:.4f} (cap ${budget.max_cost})"
            reason = self.exhausted_by
            if reason is None and starting:
                self._in_flight += 1
        if reason is not None:
            raise BudgetExhausted(f"budget reached: {reason}")

    # DSPy callback hooks -------------------------------------------------------------------------------

    def on_lm_start(self, call_id, instance, inputs):
        self.check(starting=True)
        with self._lock:
            self._lms[call_id] = instance
            if id(instance) not in self._watched:
                self._watched[id(instance)] = instance
                self._seen_entries.update(map(_entry_key, _history(instance)))

    def on_lm_end(self, call_id, outputs, exception=None):
        with self._lock:
            lm = self._lms.pop(call_id, None)
            if lm is not None:
                self._in_flight -= 1
            if exception is None:
                self.calls += 1
            if lm is not None:
                self.cost += self._new_cost(lm)

    def _new_cost(self, lm: dspy.BaseLM) -> float:
        """The cost of the billed calls `lm` recorded since last looked at (any thread's; each entry counts once).

        DSPy appends a history entry per call, with the cost LiteLLM reported (None when it could not price it);
        a cache hit records no usage and costs nothing.
        """
        cost = 0.0
        for entry in reversed(_history(lm)):
            key = _entry_key(entry)
            if key in self._seen_entries:
                break
            self._seen_entries.add(key)
            usage = entry.get("usage") or {}
            if not usage:
                continue
            reported = entry.get("cost")
            prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            cost += float(reported) if reported is not None else estimated_cost(lm.model, prompt, completion)
        return cost

    def on_evaluate_start(self, call_id, instance, inputs):
        self._evaluations[call_id] = (inputs.get("program"), len(instance.devset or []))

    def on_evaluate_end(self, call_id, outputs, exception=None):
        program, size = self._evaluations.pop(call_id, (None, 0))
        if exception is None and program is not None and outputs is not None:
            self.candidates.append(Candidate(program, float(outputs.score), size))

    def add_usage(self, model: str, usage: dict) -> None:
        with self._lock:
            self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.completion_tokens += int(usage.get("completion_tokens") or 0)

    @contextlib.contextmanager
    def active(self) -> Iterator[LMMeter]:
        """Meter every LM call made inside the block (DSPy's worker threads included)."""
        callbacks = [*dspy.settings.get("callbacks", []), self]
        # The per-call cost is read from the LM history, so it stays on while metered.
        with dspy.context(callbacks=callbacks, track_usage=True, usage_tracker=_MeterUsage(self), disable_history=False):
            yield self

    def best_candidate(self) -> Candidate | None:
        """The best-scoring program among those evaluated on the largest evaluation set seen."""
        if not self.candidates:
            return None
        largest = max(candidate.size for candidate in self.candidates)
        return max((c for c in self.candidates if c.size == largest), key=lambda c: c.score)


class _MeterUsage(UsageTracker):
    """DSPy's usage hook, feeding the meter. DSPy deep-copies it per worker thread; every copy is this one."""

    def __init__(self, meter: LMMeter) -> None:
        super().__init__()
        self.meter = meter

    def add_usage(self, lm: str, usage_entry: dict) -> None:
        super().add_usage(lm, usage_entry)
        self.meter.add_usage(lm, usage_entry)

    def __deepcopy__(self, memo) -> _MeterUsage:
        return self


def _history(lm: dspy.BaseLM) -> list[dict]:
    return list(getattr(lm, "history", None) or [])


def _entry_key(entry: dict) -> str | int:
    return entry.get("uuid") or id(entry)


def price_per_token(model: str) -> tuple[float, float] | None:
    """(input, output) USD per token from LiteLLM's price table; (0, 0) for the embedded model; None when unlisted."""
    if model.startswith("local/"):
        return 0.0, 0.0
    import litellm

    provider, _, name = model.partition("/")
    entry = litellm.model_cost.get(model) or litellm.model_cost.get(name) or {}
    if name and entry.get("litellm_provider") not in (None, provider) and model not in litellm.model_cost:
        entry = {}  # another provider's model of the same name has another price
    prices = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
    if any(not isinstance(price, (int, float)) for price in prices):
        return None
    return float(prices[0]), float(prices[1])


def estimated_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """USD for a call from LiteLLM's price table (for a call DSPy could not price); 0 for an unlisted model,
    which `require_prices` keeps out of a compile with a cost cap."""
    prices = price_per_token(model) or (0.0, 0.0)
    return prompt_tokens * prices[0] + completion_tokens * prices[1]


def require_prices(budget: Budget, lms: list[dspy.BaseLM | None]) -> None:
    """Refuse a cost cap when an LM the compile will call has no known price: its calls would cost "$0" and
    the cap would never stop the compile."""
    if budget.max_cost is None:
        return
    for lm in lms:
        model = getattr(lm, "model", None)
        if model is not None and price_per_token(model) is None:
            raise ConfigError(
                f"--max-cost needs a price per token, and LiteLLM's price table has none for {model!r}, so its "
                "calls could not be counted against the cap. Cap the compile with --max-tokens (billed tokens) or "
                "--max-lm-calls instead."
            )
