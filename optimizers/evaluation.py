"""Deterministic splits, per-example evaluation (failures counted, not hidden) and paired bootstrap confidence
intervals."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import dspy
import numpy as np
from dspy.utils.parallelizer import ParallelExecutor
from scipy import stats

from optimizers.metrics.answer import METRICS
from optimizers.metrics.composite import WeightedMetric

log = logging.getLogger(__name__)

EvalProgress = Callable[[int, int], None]
"""Called after each example with (examples done, examples in the evaluation)."""

# Cheap deterministic metrics reported for every evaluation next to the objective (no LM calls).
REPORTED = ("token_f1", "exact_match", "rouge_l", "recall@5", "citation_precision")


@dataclass
class Split:
    train: list[dspy.Example]
    dev: list[dspy.Example]
    test: list[dspy.Example]


def split_examples(
    examples: Sequence[dspy.Example], *, seed: int, train: int | None = None, dev: int | None = None, test: int | None = None
) -> Split:
    """Shuffle with `seed` (order of the file does not matter) and cut train / dev / test.

    Sizes left out share what remains: 30% train, 30% dev, 40% test by default.
    """
    ordered = sorted(examples, key=lambda ex: (str(ex.get("id")), ex.question))
    random.Random(seed).shuffle(ordered)
    total = len(ordered)
    if train is None and dev is None and test is None:
        train, dev = int(total * 0.3), int(total * 0.3)
        test = total - train - dev
    else:
        given = sum(size for size in (train, dev, test) if size is not None)
        missing = [name for name, size in (("train", train), ("dev", dev), ("test", test)) if size is None]
        rest = max(0, total - given) // max(1, len(missing))
        train, dev, test = (rest if size is None else size for size in (train, dev, test))
    if train + dev + test > total:
        raise ValueError(
            f"The eval set has {total} examples; train {train} + dev {dev} + test {test} = {train + dev + test} is more. "
            "Ask for smaller splits or use a larger eval set."
        )
    if min(train, dev, test) < 1:
        raise ValueError(f"train, dev and test need at least one example each (got {train}, {dev}, {test}).")
    return Split(ordered[:train], ordered[train : train + dev], ordered[train + dev : train + dev + test])


def examples_hash(examples: Sequence[dspy.Example]) -> str:
    """A short content hash of an eval set, logged with every compile."""
    digest = hashlib.sha256()
    for example in sorted(examples, key=lambda ex: (str(ex.get("id")), ex.question)):
        digest.update(json.dumps(example.toDict(), sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def evaluate(
    program: dspy.Module,
    examples: Sequence[dspy.Example],
    objective: WeightedMetric,
    *,
    num_threads: int = 1,
    progress: EvalProgress | None = None,
    reported: Mapping[str, Callable] | None = None,
) -> list[dict]:
    """One row per example: the objective, its components and the reported metrics (`reported`, name → metric;
    default the QA metrics of REPORTED).

    An example whose program or metric raised scores 0 on every metric and keeps the error text in `error`
    ("" for an example that ran), so failures are counted (`failures`) instead of passing for bad answers.
    """
    components = list(objective.weights) if len(objective.weights) > 1 else []
    reported = {name: METRICS[name] for name in REPORTED} if reported is None else dict(reported)
    lock = threading.Lock()
    done = 0

    def score(example: dspy.Example) -> dict:
        nonlocal done
        row = {"id": example.get("id") or example.question, "question": example.question, "gold": example.answer, "answer": "", "error": ""}
        try:
            pred = program(**example.inputs())
            row["answer"] = str(pred.get("answer", ""))
            total, parts, _ = objective.components(example, pred)
            scores = {"objective": total, **{f"objective:{name}": parts[name] for name in components}}
            scores.update({name: float(metric(example, pred)) for name, metric in reported.items()})
        except Exception as exc:  # noqa: BLE001 - one failing example is recorded and counted, not fatal
            row["error"] = f"{type(exc).__name__}: {exc}"[:1000]
            log.warning("example %s failed: %s", row["id"], row["error"])
            scores = dict.fromkeys(["objective", *(f"objective:{name}" for name in components), *reported], 0.0)
        row.update(scores)
        if progress is not None:
            with lock:
                done += 1  # DSPy may re-run a straggler, so cap at the total
                progress(min(done, len(examples)), len(examples))
        return row

    # DSPy's executor carries the caller's LM, callbacks and usage tracker into its worker threads.
    executor = ParallelExecutor(num_threads=num_threads, disable_progress_bar=True, max_errors=len(examples) + 1)
    return executor.execute(score, list(examples))


def failures(rows: Sequence[dict]) -> int:
    """How many examples of an evaluation raised instead of being scored."""
    return sum(1 for row in rows if row["error"])


def metric_names(rows: Sequence[dict]) -> list[str]:
    """The numeric columns of an evaluation, objective first."""
    return [key for key, value in rows[0].items() if isinstance(value, float)] if rows else []


def paired_bootstrap_ci(before: Sequence[float], after: Sequence[float], *, seed: int = 0, resamples: int = 2000) -> tuple[float, float]:
    """95% percentile interval of mean(after − before), resampling examples (pairs) with replacement."""
    diffs = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    if diffs.size < 2:
        # scipy needs two observations; a single pair's difference is all the data says.
        value = float(diffs[0]) if diffs.size else 0.0
        return value, value
    interval = stats.bootstrap(
        (diffs,), np.mean, n_resamples=resamples, method="percentile", vectorized=True, rng=np.random.default_rng(seed)
    ).confidence_interval
    return float(interval.low), float(interval.high)


@dataclass
class Comparison:
    split: str
    metric: str
    before: float
    after: float
    low: float
    high: float

    @property
    def delta(self) -> float:
        return self.after - self.before

    @property
    def verdict(self) -> str:
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "no clear change"


def compare(split: str, before: Sequence[dict], after: Sequence[dict], *, seed: int = 0) -> list[Comparison]:
    """Before vs after for every metric of a split, paired by example."""
    by_id = {row["id"]: row for row in after}
    paired = [(row, by_id[row["id"]]) for row in before if row["id"] in by_id]
    comparisons = []
    for name in metric_names(before):
        old = [pair[0][name] for pair in paired]
        new = [pair[1].get(name, 0.0) for pair in paired]
        low, high = paired_bootstrap_ci(old, new, seed=seed)
        comparisons.append(Comparison(split, name, float(np.mean(old)), float(np.mean(new)), low, high))
    return comparisons


def format_table(comparisons: Sequence[Comparison]) -> str:
    lines = [f"{'split':<5} {'metric':<30} {'before':>7} {'after':>7} {'diff':>7}  {'95% CI of diff':<18} verdict"]
    for c in comparisons:
        lines.append(
            f"{c.split:<5} {c.metric:<30} {c.before:>7.3f} {c.after:>7.3f} {c.delta:>+7.3f}  [{c.low:+.3f}, {c.high:+.3f}]   {c.verdict}"
        )
    return "\n".join(lines)
