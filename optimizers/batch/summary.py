"""What a batch evaluation concludes: each metric's mean with a 95% bootstrap CI, the failed examples by cause, and,
against a baseline, each metric's paired difference and the regression gate; as text and as a markdown report."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from optimizers.batch.records import FAILURE_CLASSES, FAILURE_TEXT, RAISED
from optimizers.evaluation import Comparison, compare, format_table, paired_bootstrap_ci

SPLIT = "eval"  # the comparison table's split column: the whole eval set


@dataclass(frozen=True)
class MetricSummary:
    name: str
    mean: float
    low: float
    high: float


@dataclass
class Summary:
    """One evaluation's conclusions; `comparisons` and `regressions` only with a baseline."""

    label: str
    examples: int
    metrics: list[MetricSummary]
    failures: dict[str, int]
    errors: int
    comparisons: list[Comparison] = field(default_factory=list)
    regressions: list[Comparison] = field(default_factory=list)
    tolerance: float | None = None
    baseline: str | None = None

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


def summarize(label: str, rows: Sequence[dict], metrics: Sequence[str], *, seed: int = 0) -> Summary:
    """Means with the 95% percentile-bootstrap interval of each (the paired interval against an all-zero baseline
    is the interval of the mean itself)."""
    summaries = []
    for name in metrics:
        values = [float(row[name]) for row in rows]
        low, high = paired_bootstrap_ci([0.0] * len(values), values, seed=seed)
        summaries.append(MetricSummary(name, float(np.mean(values)) if values else 0.0, low, high))
    causes = Counter(row["failure"] for row in rows if row["failure"])
    failures = {cause: causes[cause] for cause in FAILURE_CLASSES if causes[cause]}
    return Summary(label, len(rows), summaries, failures, causes[RAISED])


def gate(summary: Summary, baseline_label: str, baseline_rows: Sequence[dict], candidate_rows: Sequence[dict],
         tolerance: float | None, *, seed: int = 0) -> Summary:
    """Pair the candidate with the baseline on the examples both answered; a metric regresses when the candidate
    is worse by more than `tolerance` and the 95% CI of the difference lies wholly below zero (worse beyond noise).
    With `tolerance` None the comparison is reported and nothing regresses."""
    summary.baseline = baseline_label
    summary.tolerance = tolerance
    summary.comparisons = compare(SPLIT, baseline_rows, candidate_rows, seed=seed)
    if tolerance is not None:
        summary.regressions = [c for c in summary.comparisons if c.delta < -tolerance and c.high < 0]
    return summary


def format_summary(summary: Summary) -> str:
    lines = [f"{summary.label}: {summary.examples} examples",
             f"{'metric':<22} {'mean':>7}  95% CI"]
    lines += [f"{m.name:<22} {m.mean:>7.3f}  [{m.low:.3f}, {m.high:.3f}]" for m in summary.metrics]
    lines.append(f"failed examples: {summary.failed} of {summary.examples}"
                 + (f" ({summary.errors} raised: program, metric or judge errors)" if summary.errors else ""))
    lines += [f"  {count:>4}  {FAILURE_TEXT[cause]}" for cause, count in summary.failures.items()]
    if summary.comparisons:
        lines += ["", f"against the baseline {summary.baseline} (paired by example):",
                  format_table(summary.comparisons)]
        lines.append(_verdict(summary))
    return "\n".join(lines)


def _verdict(summary: Summary) -> str:
    if summary.tolerance is None:
        return "no regression gate (give --fail-on-regression DELTA for one)"
    if not summary.regressions:
        return f"regression gate passed: no metric is worse by more than {summary.tolerance:g} beyond noise"
    named = ", ".join(f"{c.metric} {c.delta:+.3f} [{c.low:+.3f}, {c.high:+.3f}]" for c in summary.regressions)
    return f"REGRESSION beyond {summary.tolerance:g}: {named}"


def markdown_report(summary: Summary, rows: Sequence[dict]) -> str:
    """The report a CI job attaches: metrics with CIs, the paired comparison and the gate, failures by cause and
    the failed examples themselves."""
    out = [f"# Evaluation of {summary.label}", "", f"{summary.examples} examples.", "",
           "| metric | mean | 95% CI |", "|---|---:|---|"]
    out += [f"| {m.name} | {m.mean:.3f} | [{m.low:.3f}, {m.high:.3f}] |" for m in summary.metrics]
    if summary.comparisons:
        out += ["", f"## Against {summary.baseline}", "",
                "| metric | baseline | candidate | diff | 95% CI of diff | verdict |", "|---|---:|---:|---:|---|---|"]
        out += [f"| {c.metric} | {c.before:.3f} | {c.after:.3f} | {c.delta:+.3f} | [{c.low:+.3f}, {c.high:+.3f}] "
                f"| {c.verdict} |" for c in summary.comparisons]
        out += ["", f"**{_verdict(summary)}**"]
    out += ["", f"## Failed examples: {summary.failed} of {summary.examples}", ""]
    out += [f"- {count} {FAILURE_TEXT[cause]}" for cause, count in summary.failures.items()]
    failed = [row for row in rows if row["failure"]]
    if failed:
        out += ["", "| id | cause | question | answer | error |", "|---|---|---|---|---|"]
        out += [f"| {_cell(row['id'])} | {row['failure']} | {_cell(row['question'])} | {_cell(row['answer'])} | "
                f"{_cell(row['error'])} |" for row in failed]
    return "\n".join(out) + "\n"


def _cell(text: object, limit: int = 160) -> str:
    value = " ".join(str(text).split()).replace("|", "\\|")
    return value if len(value) <= limit else value[: limit - 1] + "…"


@dataclass
class EvaluationReport:
    summary: Summary
    rows: list[dict]
    threads: int = 1
    tracking_uri: str | None = None
    run_id: str | None = None
    report: Path | None = None
    out: Path | None = None

    @property
    def regressed(self) -> bool:
        return bool(self.summary.regressions)
