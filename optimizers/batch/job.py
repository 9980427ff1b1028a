"""A batch evaluation as `scripts/evaluate.py` runs it: every check before the first LM call, the candidate (and a
baseline) answered and scored on one engine, the conclusions summarized, and all of it in one MLflow run."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from optimizers import tracking
from optimizers.batch.eval_sets import load_eval_set
from optimizers.batch.local_engine import RowProgress, evaluate_rows
from optimizers.batch.records import metric_names
from optimizers.batch.summary import EvaluationReport, gate, markdown_report, summarize
from optimizers.batch.target import EvaluationTarget, load_target
from optimizers.evaluation import examples_hash
from optimizers.programs import program_spec
from pipeline.config import Settings
from pipeline.errors import ConfigError

ENGINES = ("local", "spark")
Stage = Callable[[str], None]


@dataclass
class EvaluationJob:
    eval_set: Path | None  # None: the program's bundled eval set (QA for rag, agent tasks for agent)
    settings: Settings
    model: str | None = None  # None: the uncompiled program the settings describe
    program: str | None = None  # rag or agent, for a program file whose name does not say
    engine: str = "local"
    threads: int | None = None  # None: sized for the LM (EvaluationTarget.default_threads)
    retriever_only: bool = False
    judges: list[str] = field(default_factory=list)
    baseline: str | None = None
    fail_on_regression: float | None = None
    report: Path | None = None
    out: Path | None = None  # the Spark engine's Parquet output
    spark_master: str = "local[*]"
    track: bool = True
    seed: int = 0


def check_job(job: EvaluationJob) -> None:
    """What is wrong with the request itself, before anything is loaded."""
    if job.engine not in ENGINES:
        raise ConfigError(f"Unknown engine {job.engine!r}. Valid engines: {', '.join(ENGINES)}.")
    if job.threads is not None and job.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {job.threads}.")
    if job.fail_on_regression is not None and job.baseline is None:
        raise ConfigError("--fail-on-regression compares against a baseline: give --baseline URI too.")
    if job.fail_on_regression is not None and job.fail_on_regression < 0:
        raise ConfigError(f"--fail-on-regression is a tolerated drop (0 or more), got {job.fail_on_regression}.")
    if job.retriever_only and job.judges:
        raise ConfigError("--retriever-only calls no LM, so it runs no judges; drop --judges or --retriever-only.")
    from optimizers.judges import JUDGES

    unknown = [name for name in job.judges if name not in JUDGES]
    if unknown:
        raise ConfigError(f"Unknown judge {', '.join(map(repr, unknown))}. Judges: {', '.join(JUDGES)}.")
    if job.engine == "spark":
        if job.model is None or not job.model.startswith(("models:/", "runs:/")):
            raise ConfigError("--engine spark answers with a registered model: give --model models:/<name>@<alias> "
                              "(or models:/<name>/<version>, runs:/<run id>/model).")
        if job.eval_set is None:
            raise ConfigError("--engine spark needs the questions file: JSONL, CSV, Parquet or a Delta table folder.")
        if job.out is None:
            raise ConfigError("--engine spark writes its answers to Parquet: give --out answers.parquet.")
        if job.retriever_only or job.baseline or job.judges:
            raise ConfigError("--engine spark answers and scores with the model alone; --retriever-only, --baseline "
                              "and --judges run on the local engine.")


def run_evaluation_job(job: EvaluationJob, *, stage: Stage | None = None,
                       progress: RowProgress | None = None) -> EvaluationReport:
    """Run one evaluation end to end; `stage` hears what starts, `progress` each example done; nothing printed."""
    check_job(job)
    say = stage or (lambda text: None)
    uri = None
    if job.track:
        uri = tracking.open_tracking(job.settings.tracking.experiment)
        say(f"MLflow: {uri} (experiment {job.settings.tracking.experiment!r})")
    if job.engine == "spark":
        from optimizers.batch.spark_job import run_spark_job

        report = run_spark_job(job, say)
    else:
        report = _run_local(job, say, progress)
    report.tracking_uri = uri
    if job.report is not None:
        job.report.parent.mkdir(parents=True, exist_ok=True)
        job.report.write_text(markdown_report(report.summary, report.rows), encoding="utf-8")
        report.report = job.report
    return report


def _run_local(job: EvaluationJob, say: Stage, progress: RowProgress | None) -> EvaluationReport:
    from pipeline.lm.factory import make_lm

    settings = job.settings
    with contextlib.ExitStack() as stack:
        say(f"loading {job.model or 'the program the settings describe'}")
        target = _open(stack, job.model, job)
        eval_set = job.eval_set or program_spec(target.kind).default_eval_set()
        examples = load_eval_set(eval_set, target.kind, retriever_only=job.retriever_only)
        baseline = _open(stack, job.baseline, job) if job.baseline else None
        if baseline is not None and baseline.kind != target.kind:
            raise ConfigError(f"The baseline {job.baseline} is the {baseline.kind} program and the candidate the "
                              f"{target.kind} program; compare two programs of one kind.")
        names = metric_names(target.kind, retriever_only=job.retriever_only)
        judges = {name: _judge(name) for name in job.judges}
        judge_lm = None
        if judges:
            judge_lm = target.lm
            if settings.judge_lm:
                judge_lm = make_lm(settings.judge_lm, max_tokens=512, dtype=settings.embedded_dtype)
        threads = job.threads or target.default_threads()
        params = {"model": target.label, "program": target.kind, "eval_set": str(eval_set),
                  "eval_set_hash": examples_hash(examples), "examples": len(examples), "threads": threads,
                  "engine": "local", "retriever_only": job.retriever_only, "judges": ",".join(job.judges),
                  "baseline": job.baseline or "", "fail_on_regression": job.fail_on_regression}
        run = None
        if not job.track:
            from optimizers.batch.recording import tracing_off

            stack.enter_context(tracing_off())
        if job.track:
            from optimizers.batch.recording import evaluation_run, log_eval_set

            run = stack.enter_context(evaluation_run(f"evaluate {target.label}", params))
            log_eval_set(examples, eval_set.name, params["eval_set_hash"])

        def score(program: EvaluationTarget, label: str) -> list[dict]:
            say(f"{'retrieving for' if job.retriever_only else 'answering'} {len(examples)} examples with {label} "
                f"on {threads} thread{'s' if threads > 1 else ''}")
            return evaluate_rows(program, examples, names, judges=judges, judge_lm=judge_lm, threads=threads,
                                 retriever_only=job.retriever_only, trace=job.track, progress=progress)

        rows = score(target, target.label)
        summary = summarize(target.label, rows, [*names, *judges], seed=job.seed)
        if baseline is not None:
            baseline_rows = score(baseline, baseline.label)
            gate(summary, baseline.label, baseline_rows, rows, job.fail_on_regression, seed=job.seed)
        if run is not None:
            from optimizers.batch.recording import record_rows

            say("recording the results in MLflow")
            record_rows(run.info.run_id, rows, [*names, *judges], summary, threads=threads)
            if baseline is not None:
                tracking.log_rows(baseline_rows, "per_example/baseline.json")
    return EvaluationReport(summary, rows, threads, run_id=run.info.run_id if run is not None else None)


def _open(stack: contextlib.ExitStack, model: str | None, job: EvaluationJob) -> EvaluationTarget:
    target = load_target(model, job.settings, kind=job.program, with_lm=not job.retriever_only)
    stack.callback(target.close)
    return target


def _judge(name: str):
    from optimizers.judges import make_judge

    return make_judge(name)
