"""Compile a program, end to end: split → baseline on dev and test → compile under a budget (the optimizer runs
until it finishes or the budget stops it) → compiled on dev and test → table with paired bootstrap CIs → one MLflow
run (params, metrics, artifacts, traces)."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dspy

from optimizers.budget import Budget, BudgetExhausted, LMMeter, require_prices
from optimizers.evaluation import Comparison, Split, compare, evaluate, examples_hash, failures, format_table, split_examples
from optimizers.factories import Optimizer, make_optimizer
from optimizers.metrics.composite import WeightedMetric
from optimizers.programs import program_spec
from pipeline.errors import ConfigError, EvalSetError

log = logging.getLogger(__name__)

CompileProgress = Callable[[str, int, int], None]
"""Called with (stage, done, total): once as a stage starts (done 0), then after each example of an evaluation
stage; total is 0 for a stage that is not counted in examples."""

SPLITS = ("dev", "test")


@dataclass
class CompileOutcome:
    program: dspy.Module
    seconds: float
    stopped_by_budget: str | None = None
    kept: str = "optimizer result"


def compile_program(optimizer: Optimizer, student: dspy.Module, trainset: list, valset: list, meter: LMMeter) -> CompileOutcome:
    """Run the optimizer with every LM call metered; when the budget stops it, keep the best program so far.

    "Best so far", in order: BootstrapFewShot's demos gathered before the stop; else the best program any
    optimizer evaluated in full (random search candidates, MIPROv2 full evaluations, GEPA validation runs);
    else the uncompiled program.
    """
    started = time.perf_counter()
    try:
        with meter.active():
            program = optimizer.compile(student, trainset, valset)
        return CompileOutcome(program, time.perf_counter() - started)
    except BudgetExhausted as stop:
        log.warning("%s; keeping the best program found so far", stop)
        program, kept = _best_so_far(optimizer, student, meter)
        return CompileOutcome(program, time.perf_counter() - started, stopped_by_budget=meter.exhausted_by, kept=kept)


def _best_so_far(optimizer: Optimizer, student: dspy.Module, meter: LMMeter) -> tuple[dspy.Module, str]:
    teleprompter = optimizer.teleprompter
    traces = getattr(teleprompter, "name2traces", None)
    if isinstance(teleprompter, dspy.BootstrapFewShot) and traces and any(traces.values()):
        if not hasattr(teleprompter, "validation"):
            teleprompter.validation = []  # set at the end of a finished bootstrap pass; only labelled demos use it
        teleprompter._train()
        program = teleprompter.student
        program._compiled = True
        return program, f"{sum(map(len, traces.values()))} demos bootstrapped before the stop"
    candidate = meter.best_candidate()
    if candidate is not None:
        return candidate.program, f"best of {len(meter.candidates)} evaluated candidates (score {candidate.score:.3f})"
    return student, "the uncompiled program (no candidate was complete when the budget ran out)"


@dataclass
class CompileRequest:
    """What to compile and how; every field is logged as an MLflow param.

    `metric` and `eval_set` left as None take the program's defaults (the RAG program: token_f1 on the demo QA set;
    the agent: answer correctness and tool selection on the agent tasks); `resolved()` fills them in."""

    program: str = "rag"
    optimizer: str = "bootstrap"
    preset: str = "light"
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    metric: dict[str, float] | None = None  # None: the program's default objective (optimizers.programs)
    budget: Budget = field(default_factory=Budget)
    seed: int = 0
    train: int | None = None
    dev: int | None = None
    test: int | None = None
    eval_set: Path | None = None  # None: the program's bundled eval set
    num_threads: int = 1
    out_dir: Path = Path(".tessera/compiled")

    def resolved(self) -> CompileRequest:
        spec = program_spec(self.program)
        return dataclasses.replace(self, metric=dict(self.metric or spec.metric),
                                   eval_set=self.eval_set or spec.default_eval_set())


@dataclass
class CompileReport:
    split: Split
    baseline: dict[str, list[dict]]
    compiled: dict[str, list[dict]]
    comparisons: list[Comparison]
    outcome: CompileOutcome
    compile_meter: LMMeter
    eval_meter: LMMeter
    seconds: float
    program_path: Path
    objective: str = ""
    run_id: str | None = None
    model_uri: str | None = None

    def failures(self, split: str) -> tuple[int, int]:
        """Examples of a split that raised instead of being scored (each scored 0): baseline, compiled."""
        return failures(self.baseline[split]), failures(self.compiled[split])

    def summary(self) -> str:
        objective = next(c for c in self.comparisons if c.split == "test" and c.metric == "objective")
        failed = {split: self.failures(split) for split in SPLITS}
        lines = [
            f"objective = {self.objective}",
            format_table(self.comparisons),
            "",
            "failed examples (scored 0; the error is in per_example/<split>.json): "
            + "; ".join(f"{split} {before} baseline, {after} compiled" for split, (before, after) in failed.items()),
            f"compile: {self.compile_meter.calls} LM calls, {self.compile_meter.tokens} tokens, {self.outcome.seconds:.0f}s"
            + (f" — stopped by the budget at {self.outcome.stopped_by_budget}; kept {self.outcome.kept}" if self.outcome.stopped_by_budget else ""),
            f"evaluation: {self.eval_meter.calls} LM calls, {self.eval_meter.tokens} tokens; total wall time {self.seconds:.0f}s",
            f"compiled program: {self.program_path}",
        ]
        if objective.low > 0:
            lines.append(f"Result: the compiled program is better on the held-out test split (objective {objective.before:.3f} → {objective.after:.3f}, 95% CI of the gain [{objective.low:+.3f}, {objective.high:+.3f}]).")
        elif objective.high < 0:
            lines.append(f"Result: the compiled program is WORSE on the held-out test split (objective {objective.before:.3f} → {objective.after:.3f}, CI [{objective.low:+.3f}, {objective.high:+.3f}]). Keep the uncompiled program.")
        else:
            lines.append(f"Result: no clear improvement on the held-out test split (objective {objective.before:.3f} → {objective.after:.3f}, CI [{objective.low:+.3f}, {objective.high:+.3f}] includes 0).")
        return "\n".join(lines)


def parse_metric(spec: str) -> dict[str, float]:
    """`token_f1` or `token_f1=0.7,correctness=0.3` → weights."""
    weights: dict[str, float] = {}
    for part in filter(None, (piece.strip() for piece in spec.split(","))):
        name, _, weight = part.partition("=")
        try:
            weights[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise ConfigError(f"Metric weight {weight!r} for {name!r} is not a number; write e.g. token_f1=0.7,correctness=0.3.") from None
    return weights


@dataclass
class Prepared:
    """A request checked and built, before any LM call."""

    examples: list[dspy.Example]
    split: Split
    metric: WeightedMetric
    optimizer: Optimizer
    judge_lm: dspy.BaseLM | None
    reflection_lm: dspy.BaseLM | None
    request: CompileRequest | None = None  # with the program's defaults filled in


def prepare(request: CompileRequest, *, judge_lm: dspy.BaseLM | None = None, reflection_lm: dspy.BaseLM | None = None) -> Prepared:
    """Check everything that can be checked before an LM call: program, eval set, split sizes, metric, optimizer."""
    request = request.resolved()
    examples = program_spec(request.program).load(request.eval_set)
    try:
        split = split_examples(examples, seed=request.seed, train=request.train, dev=request.dev, test=request.test)
    except ValueError as exc:
        raise EvalSetError(f"{request.eval_set}: {exc}") from None
    try:
        metric = WeightedMetric(request.metric, judge_lm=judge_lm, feedback=request.optimizer == "gepa")
        extra = {"reflection_lm": reflection_lm} if request.optimizer == "gepa" and reflection_lm is not None else {}
        optimizer = make_optimizer(request.optimizer, metric, request.preset, seed=request.seed, **extra, **request.hyperparameters)
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc)) from None
    try:
        optimizer.check_sizes(len(split.train), len(split.dev))
    except ValueError as exc:
        raise EvalSetError(f"{request.eval_set} ({len(examples)} examples): {exc}") from None
    require_prices(request.budget, [dspy.settings.lm, judge_lm, reflection_lm])
    return Prepared(examples, split, metric, optimizer, judge_lm, reflection_lm, request)


def run_compile(
    request: CompileRequest,
    student: dspy.Module,
    *,
    prepared: Prepared | None = None,
    settings=None,
    track: bool = True,
    progress: CompileProgress | None = None,
) -> CompileReport:
    """Run one compile; with `track`, inside one MLflow run (the caller has called `open_tracking`).

    The model is logged afterwards with `tracking.log_program_model(report.run_id, …)`, once the caller has
    closed the store so the index snapshot is complete.
    """
    started = time.perf_counter()
    ready = prepared or prepare(request)
    request = ready.request or request.resolved()
    if not track:
        return _compile_and_evaluate(request, student, ready, started, progress)

    from optimizers import tracking

    task_lm = dspy.settings.lm
    name = f"{request.program}-{request.optimizer}-{request.preset}"
    with tracking.compile_run(name, tags={"tessera.program": request.program, "tessera.optimizer": request.optimizer}) as run:
        tracking.log_params(_params(request, ready, settings, task_lm))
        report = _compile_and_evaluate(request, student, ready, started, progress)
        report.run_id = run.info.run_id
        tracking.log_metrics(_metrics(report))
        for split_name in SPLITS:
            tracking.log_rows(_paired_rows(report, split_name), f"per_example/{split_name}.json")
        tracking.log_text(report.summary(), "results.txt")
        tracking.log_text(report.program_path.read_text(encoding="utf-8"), "program/program.json")
        if settings is not None:
            tracking.log_text(json.dumps(settings.model_dump(mode="json", exclude={"store": {"api_key"}}), indent=2), "config/settings.json")
    return report


def _compile_and_evaluate(
    request: CompileRequest, student: dspy.Module, ready: Prepared, started: float, progress: CompileProgress | None
) -> CompileReport:
    split, metric = ready.split, ready.metric
    say = progress or (lambda stage, done, total: None)
    eval_meter = LMMeter()

    def evaluate_splits(program: dspy.Module, label: str) -> dict[str, list[dict]]:
        rows = {}
        with eval_meter.active():
            for name in SPLITS:
                examples = getattr(split, name)
                stage = f"{label} on {name} ({len(examples)} examples)"
                say(stage, 0, len(examples))
                rows[name] = evaluate(
                    program, examples, metric, num_threads=request.num_threads, progress=lambda done, total, stage=stage: say(stage, done, total),
                    reported=program_spec(request.program).reported,
                )
        return rows

    baseline = evaluate_splits(student, "baseline")
    say(
        f"compiling with {request.optimizer} ({request.preset}) on {len(split.train)} train / {len(split.dev)} dev examples; "
        f"budget: {request.budget.describe()}",
        0,
        0,
    )
    compile_meter = LMMeter(request.budget)
    outcome = compile_program(ready.optimizer, student, split.train, split.dev, compile_meter)
    compiled = evaluate_splits(outcome.program, "compiled")
    comparisons = [comparison for name in SPLITS for comparison in compare(name, baseline[name], compiled[name], seed=request.seed)]
    request.out_dir.mkdir(parents=True, exist_ok=True)
    program_path = request.out_dir / f"{request.program}-{request.optimizer}-{request.preset}-seed{request.seed}.json"
    outcome.program.save(str(program_path))
    return CompileReport(
        split, baseline, compiled, comparisons, outcome, compile_meter, eval_meter, time.perf_counter() - started, program_path, metric.describe()
    )


def _params(request: CompileRequest, ready: Prepared, settings, task_lm) -> dict[str, Any]:
    split, examples, judge_lm, reflection_lm = ready.split, ready.examples, ready.judge_lm, ready.reflection_lm
    params: dict[str, Any] = {
        "program": request.program,
        "optimizer": request.optimizer,
        "preset": request.preset,
        "hyperparameters": request.hyperparameters,
        "metric": request.metric,
        "max_lm_calls": request.budget.max_lm_calls,
        "max_tokens": request.budget.max_tokens,
        "max_cost": request.budget.max_cost,
        "seed": request.seed,
        "task_lm": getattr(task_lm, "model", None),
        "judge_lm": getattr(judge_lm, "model", None) or getattr(task_lm, "model", None),
        "reflection_lm": getattr(reflection_lm, "model", None),
        "eval_set": str(request.eval_set),
        "eval_set_hash": examples_hash(examples),
        "eval_set_size": len(examples),
        "train_size": len(split.train),
        "dev_size": len(split.dev),
        "test_size": len(split.test),
    }
    if settings is not None:
        params.update(
            {
                "collection": settings.collection,
                "embedder": settings.embedder,
                "retrieval": settings.retrieval.model_dump(),
                "rerank": settings.rerank.model_dump(),
                "max_answer_tokens": settings.max_tokens,
            }
        )
    return params


def _metrics(report: CompileReport) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for c in report.comparisons:
        metrics[f"baseline.{c.split}.{c.metric}"] = c.before
        metrics[f"compiled.{c.split}.{c.metric}"] = c.after
        metrics[f"delta.{c.split}.{c.metric}"] = c.delta
        metrics[f"delta_ci_low.{c.split}.{c.metric}"] = c.low
        metrics[f"delta_ci_high.{c.split}.{c.metric}"] = c.high
    metrics.update(
        {
            "compile_lm_calls": report.compile_meter.calls,
            "compile_tokens": report.compile_meter.tokens,
            "compile_cost_usd": report.compile_meter.cost,
            "compile_seconds": report.outcome.seconds,
            "eval_lm_calls": report.eval_meter.calls,
            "eval_tokens": report.eval_meter.tokens,
            "lm_calls": report.compile_meter.calls + report.eval_meter.calls,
            "wall_seconds": report.seconds,
            "stopped_by_budget": float(report.outcome.stopped_by_budget is not None),
            **{f"errors.{split}": float(sum(report.failures(split))) for split in SPLITS},
        }
    )
    return metrics


def _paired_rows(report: CompileReport, split: str) -> list[dict]:
    after = {row["id"]: row for row in report.compiled[split]}
    rows = []
    for before in report.baseline[split]:
        row = {"id": before["id"], "question": before["question"], "gold": before["gold"]}
        compiled = after.get(before["id"], {})
        for key, value in before.items():
            if key not in row:
                row[f"baseline_{key}"] = value
                row[f"compiled_{key}"] = compiled.get(key)
        rows.append(row)
    return rows
