"""Deterministic splits, per-example evaluation and paired bootstrap confidence intervals."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass

import dspy
import numpy as np

from optimizers.metrics.answer import METRICS
from optimizers.metrics.composite import WeightedMetric

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
    label: str = "",
) -> list[dict]:
    """One row per example: the objective, its components and the reported metrics; a progress bar while it runs."""
    scored: dict[int, tuple[float, dict[str, float]]] = {}

    def metric(example, pred, trace=None):
        score, components, _ = objective.components(example, pred)
        scored[id(pred)] = (score, components)
        return score

    if label:
        print(label, flush=True)
    evaluator = dspy.Evaluate(
        devset=list(examples), metric=metric, num_threads=num_threads, display_progress=True, max_errors=len(examples) + 1, provide_traceback=False
    )
    result = evaluator(program)
    rows = []
    for example, pred, _ in result.results:
        answered = "answer" in pred
        score, components = scored.get(id(pred), (0.0, {}))
        row = {"id": example.get("id") or example.question, "question": example.question, "gold": example.answer, "answer": pred.get("answer", "") if answered else "", "error": not answered, "objective": score}
        if len(components) > 1:
            row.update({f"objective:{name}": value for name, value in components.items()})
        for name in REPORTED:
            row[name] = float(METRICS[name](example, pred)) if answered else 0.0
        rows.append(row)
    return rows


def metric_names(rows: Sequence[dict]) -> list[str]:
    """The numeric columns of an evaluation, objective first."""
    return [key for key, value in rows[0].items() if isinstance(value, float)] if rows else []


def mean(rows: Sequence[dict], name: str) -> float:
    return float(np.mean([row[name] for row in rows])) if rows else 0.0


def paired_bootstrap_ci(before: Sequence[float], after: Sequence[float], *, seed: int = 0, resamples: int = 2000) -> tuple[float, float]:
    """95% percentile interval of mean(after − before), resampling examples with replacement."""
    diffs = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    if diffs.size == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, diffs.size, size=(resamples, diffs.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


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
