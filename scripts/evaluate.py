"""Evaluate a program on an eval set: a saved program file, a run's model or a registered model (RAG or agent),
answered on parallel threads (or on Spark), scored with the project's metrics (and judges), failed examples
classified, all in one MLflow run.

    scripts/evaluate.py --model models:/tessera-rag@challenger eval_sets/qa.jsonl
    scripts/evaluate.py --model models:/tessera-rag@challenger --baseline models:/tessera-rag@champion \\
        --fail-on-regression 0.02 --report report.md eval_sets/qa.jsonl
    scripts/evaluate.py --retriever-only eval_sets/qa.jsonl
    scripts/evaluate.py --engine spark --model models:/tessera-rag@champion questions.parquet --out answers.parquet

Exit codes: 0 done (also when examples failed: they are counted in the report); 2 a usage or configuration error
(unknown model, mismatched eval set, Java missing for Spark, ...); 4 the candidate regressed against --baseline by
more than --fail-on-regression with the 95% CI of the difference below zero; 130 interrupted.
"""

import argparse
from pathlib import Path

from tqdm import tqdm

from pipeline.cli import EXIT_REGRESSION, entry_point
from pipeline.config import load_settings

PROGRAMS = ("rag", "agent")  # optimizers.programs.PROGRAMS, named here so --help needs no heavy import


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("eval_set", nargs="?", type=Path,
                        help="eval set (JSONL; with --engine spark also CSV, Parquet or a Delta folder); default: the "
                             "bundled QA set for a RAG program, the agent tasks for the agent")
    parser.add_argument("--model", help="program file (.tessera/compiled/...json), runs:/<run id>/model, "
                        "models:/<name>/<version> or models:/<name>@<alias>; default: the settings' uncompiled program")
    parser.add_argument("--program", choices=PROGRAMS,
                        help="the program a program file holds, when its name does not say")
    parser.add_argument("--threads", type=int,
                        help="parallel examples (default: 1 for an embedded local/* LM, 8 for a hosted one)")
    parser.add_argument("--retriever-only", action="store_true",
                        help="score retrieval alone (recall@5, MRR, nDCG@5); no LM call")
    parser.add_argument("--judges", default="",
                        help="LLM judges to add, comma-separated (e.g. correctness,faithfulness)")
    parser.add_argument("--judge-lm", help="LiteLLM model string for the judges (default: the program's LM)")
    parser.add_argument("--baseline", help="a second model to compare with, paired by example (same forms as --model)")
    parser.add_argument("--fail-on-regression", type=float, metavar="DELTA",
                        help=f"exit {EXIT_REGRESSION} when a metric is worse than the baseline's by more than DELTA "
                             "and the 95%% CI of the difference is below zero")
    parser.add_argument("--report", type=Path, help="write a markdown report here")
    parser.add_argument("--engine", default="local", choices=("local", "spark"),
                        help="where to answer: local threads or Spark")
    parser.add_argument("--spark-master", default="local[*]", help="Spark master URL for --engine spark")
    parser.add_argument("--out", type=Path,
                        help="Parquet output of --engine spark: every row, failed rows with their error")
    parser.add_argument("--calibrate-judges", action="store_true",
                        help="measure each LLM judge against the human labels on traces (Cohen's kappa)")
    parser.add_argument("--collection", help="collection to evaluate against (default from tessera.yaml: docs)")
    parser.add_argument("--store", help="embedded store folder (default .tessera/store)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    parser.add_argument("--config", help="settings file (default ./tessera.yaml when present)")
    return parser.parse_args(argv)


class RowBar:
    """A progress bar over the examples of each evaluation pass."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def stage(self, text: str) -> None:
        self.close()
        print(text, flush=True)

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = tqdm(total=total, unit="example")
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@entry_point
def main() -> int:
    args = parse_args()
    overrides: dict = {"collection": args.collection, "judge_lm": args.judge_lm}
    if args.store:
        overrides["store"] = {"path": args.store}
    settings = load_settings(args.config, **overrides)
    # Judge calibration reads human labels from traces, not an eval set: it is its own command.
    if args.calibrate_judges:
        import mlflow

        from optimizers.calibration import calibrate_judges, format_calibration
        from optimizers.trace_checks import judge_lm_named
        from optimizers.tracking import tracking_uri

        mlflow.set_tracking_uri(tracking_uri())  # the store scripts/serve.py and scripts/feedback.py use
        judge_lm = judge_lm_named(settings.judge_lm or settings.lm, dtype=settings.embedded_dtype)
        bar = RowBar()
        try:
            calibration = calibrate_judges(judge_lm, progress=bar)
        finally:
            bar.close()
        print(format_calibration(calibration))
        return 0

    from optimizers.batch.job import EvaluationJob, run_evaluation_job
    from optimizers.batch.summary import format_summary

    job = EvaluationJob(
        eval_set=args.eval_set, settings=settings, model=args.model, program=args.program, engine=args.engine,
        threads=args.threads, retriever_only=args.retriever_only,
        judges=[name.strip() for name in args.judges.split(",") if name.strip()], baseline=args.baseline,
        fail_on_regression=args.fail_on_regression, report=args.report, out=args.out, spark_master=args.spark_master,
        track=not args.no_mlflow, seed=args.seed,
    )
    bar = RowBar()
    try:
        report = run_evaluation_job(job, stage=bar.stage, progress=bar)
    finally:
        bar.close()
    print(format_summary(report.summary))
    if report.out:
        print(f"answers: {report.out}")
    if report.report:
        print(f"report: {report.report}")
    if report.run_id:
        print(f"MLflow run {report.run_id} at {report.tracking_uri}")
    return EXIT_REGRESSION if report.regressed else 0


if __name__ == "__main__":
    main()
