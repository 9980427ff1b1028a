"""Online monitoring: score a sample of recent served answers with the checks that need no ground truth
(optimizers/trace_checks.py), log the scores back on their traces, and compare the window with the one before.

The current window is [until - since, until); the previous window is the `window` (default: as long as the
current one) right before it. Scores an earlier run logged on a trace are read back, not judged again, so an
hourly job judges each answer once. A judge that fails on an answer marks that answer failed (an assessment with
the error is logged, so the next run tries again) and the job goes on. Drift is the difference of a check's mean
between the windows with a 95% bootstrap interval (answers resampled within each window): "up" or "down" when the
interval excludes 0.
"""

from __future__ import annotations

import logging
import random
import statistics
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from optimizers.served_traces import ServedTrace, find_served_traces, now_ms
from optimizers.trace_checks import CHECKS, JUDGED, JudgeLM, log_scores, logged_scores, measured, run_judge

log = logging.getLogger(__name__)


@dataclass
class ScoredTrace:
    trace: ServedTrace
    scores: dict[str, float] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    judged: int = 0


@dataclass
class DayRow:
    day: str
    traces: int
    failed: int
    means: dict[str, float | None]


@dataclass
class Drift:
    check: str
    previous: float | None
    current: float | None
    low: float | None = None
    high: float | None = None

    @property
    def delta(self) -> float | None:
        return None if self.previous is None or self.current is None else self.current - self.previous

    @property
    def verdict(self) -> str:
        if self.delta is None:
            return "no data in one window"
        if self.low is not None and self.low > 0:
            return "up"
        if self.high is not None and self.high < 0:
            return "down"
        return "no clear change"


@dataclass
class MonitorReport:
    since_ms: int
    until_ms: int
    previous_since_ms: int
    current: list[ScoredTrace]
    previous: list[ScoredTrace]
    days: list[DayRow]
    drift: list[Drift]

    @property
    def failed(self) -> int:
        return sum(1 for scored in self.current + self.previous if scored.failed)

    @property
    def judge_calls(self) -> int:
        return sum(scored.judged for scored in self.current + self.previous)


def monitor(
    judge_lm: JudgeLM,
    *,
    since_ms: int,
    until_ms: int | None = None,
    window_ms: int | None = None,
    sample: int | None = None,
    seed: int = 0,
    prices: Any | None = None,
    experiment_ids: Sequence[str] | None = None,
    threads: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> MonitorReport:
    """Score the served traces of [until_ms - since_ms, until_ms) and of the `window_ms` before, at most `sample`
    of each (drawn with `seed`); `prices` (pipeline.serving.keys.Prices) gives cost_usd."""
    until = now_ms() if until_ms is None else until_ms
    start = until - since_ms
    previous_start = start - (window_ms if window_ms is not None else since_ms)
    current = _sampled(find_served_traces(start, until, experiment_ids=experiment_ids), sample, seed)
    previous = _sampled(find_served_traces(previous_start, start, experiment_ids=experiment_ids), sample, seed)
    everything = current + previous
    scored = _score_all(everything, judge_lm, prices, threads, progress)
    current_scored, previous_scored = scored[: len(current)], scored[len(current):]
    return MonitorReport(start, until, previous_start, current_scored, previous_scored, _days(scored),
                         [_drift(name, previous_scored, current_scored, seed) for name in CHECKS])


def _sampled(traces: list[ServedTrace], sample: int | None, seed: int) -> list[ServedTrace]:
    if sample is None or len(traces) <= sample:
        return traces
    chosen = random.Random(seed).sample(traces, sample)
    return sorted(chosen, key=lambda trace: trace.timestamp_ms, reverse=True)


def _score_all(traces: list[ServedTrace], judge_lm: JudgeLM, prices: Any | None, threads: int,
               progress: Callable[[int, int], None] | None) -> list[ScoredTrace]:
    """Judge calls run on `threads` threads; the scores are logged from this thread, one trace at a time."""
    results: list[ScoredTrace] = []
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for done, (scored, rationales, errors) in enumerate(
            pool.map(lambda trace: _score(trace, judge_lm, prices), traces), start=1
        ):
            fresh = {name: value for name, value in scored.scores.items() if name not in logged_scores(scored.trace)}
            if fresh or errors:
                log_scores(scored.trace.trace_id, fresh, judge_lm, rationales, errors)
            results.append(scored)
            if progress is not None:
                progress(done, len(traces))
    return results


def _score(trace: ServedTrace, judge_lm: JudgeLM, prices: Any | None) -> tuple[ScoredTrace, dict, dict]:
    scored = ScoredTrace(trace, scores=logged_scores(trace))
    rationales: dict[str, str] = {}
    errors: dict[str, str] = {}
    for name, value in measured(trace, prices).items():
        scored.scores.setdefault(name, value)
    for name in JUDGED:
        if name in scored.scores:
            continue
        try:
            judged = run_judge(name, trace, judge_lm)
        except Exception as exc:  # noqa: BLE001 - a failed judge call fails this answer's check, not the job
            log.warning("judge %s failed on trace %s: %s: %s", name, trace.trace_id, type(exc).__name__, exc)
            scored.failed.append(name)
            scored.judged += 1
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        if judged is not None:
            scored.judged += 1
            scored.scores[name] = float(judged.score)
            rationales[name] = str(judged.feedback)
    return scored, rationales, errors


def _day(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d")


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _days(scored: Sequence[ScoredTrace]) -> list[DayRow]:
    by_day: dict[str, list[ScoredTrace]] = {}
    for item in scored:
        by_day.setdefault(_day(item.trace.timestamp_ms), []).append(item)
    return [
        DayRow(day, len(items), sum(1 for item in items if item.failed),
               {name: _mean([item.scores[name] for item in items if name in item.scores]) for name in CHECKS})
        for day, items in sorted(by_day.items())
    ]


def _drift(name: str, previous: Sequence[ScoredTrace], current: Sequence[ScoredTrace], seed: int) -> Drift:
    before = [item.scores[name] for item in previous if name in item.scores]
    after = [item.scores[name] for item in current if name in item.scores]
    drift = Drift(name, _mean(before), _mean(after))
    if len(before) >= 2 and len(after) >= 2:
        drift.low, drift.high = _difference_interval(before, after, seed)
    return drift


def _difference_interval(before: Sequence[float], after: Sequence[float], seed: int,
                         resamples: int = 2000) -> tuple[float, float]:
    """95% percentile interval of mean(after) - mean(before), resampling each window on its own (the windows hold
    different answers, so nothing pairs them)."""
    rng = np.random.default_rng(seed)
    old, new = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    diffs = (rng.choice(new, (resamples, new.size)).mean(axis=1) - rng.choice(old, (resamples, old.size)).mean(axis=1))
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


_FORMATS = {"latency_ms": "{:.0f}", "cost_usd": "{:.5f}"}


def _cell(name: str, value: float | None) -> str:
    return "-" if value is None else _FORMATS.get(name, "{:.3f}").format(value)


def format_report(report: MonitorReport) -> str:
    """The per-day table of check means, then the drift of each check against the previous window."""
    def when(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")

    if not report.current:
        return (f"No served traces between {when(report.since_ms)} and {when(report.until_ms)} UTC: nothing to "
                "score. Is scripts/serve.py tracing to this MLFLOW_TRACKING_URI?")
    header = f"{'day (UTC)':<10} {'traces':>6} {'failed':>6} " + " ".join(f"{name:>16}" for name in CHECKS)
    lines = [header]
    for row in report.days:
        cells = " ".join(f"{_cell(name, row.means[name]):>16}" for name in CHECKS)
        lines.append(f"{row.day:<10} {row.traces:>6} {row.failed:>6} {cells}")
    lines.append("")
    lines.append(f"drift: {len(report.current)} traces since {when(report.since_ms)} UTC against "
                 f"{len(report.previous)} from {when(report.previous_since_ms)} to {when(report.since_ms)} UTC")
    lines.append(f"{'check':<16} {'previous':>10} {'current':>10} {'change':>10}  {'95% CI':<22} verdict")
    for drift in report.drift:
        change = "-" if drift.delta is None else f"{drift.delta:+.3f}"
        interval = "-" if drift.low is None else f"[{drift.low:+.3f}, {drift.high:+.3f}]"
        lines.append(f"{drift.check:<16} {_cell(drift.check, drift.previous):>10} "
                     f"{_cell(drift.check, drift.current):>10} {change:>10}  {interval:<22} {drift.verdict}")
    failed = [scored for scored in report.current + report.previous if scored.failed]
    if failed:
        counts = {name: sum(name in scored.failed for scored in failed) for name in JUDGED}
        named = ", ".join(f"{name} {count}" for name, count in counts.items() if count)
        lines.append(f"\n{len(failed)} trace(s) failed a judge ({named}); their other checks were kept and the next "
                     "run judges them again.")
    return "\n".join(lines)
