"""Compile (optimize) a program's prompts and demos (the RAG program, or with --program agent the agent's tool
selector and answer step) with a DSPy optimizer, and log it all to MLflow.

Splits the eval set into train / dev / test (same seed, same split), scores the uncompiled program on dev and
test, compiles under the budget, scores the compiled program on dev and test, prints each metric before and
after with a 95% bootstrap CI of the difference, saves the compiled program and logs one MLflow run.
"""

import argparse
import json
from pathlib import Path

from tqdm import tqdm

from pipeline.cli import entry_point
from pipeline.config import load_settings
from pipeline.errors import ConfigError

PROGRAMS = ("rag", "agent")  # optimizers.programs.PROGRAMS, named here so --help needs no heavy import


def parse_args(argv=None) -> argparse.Namespace:
    from optimizers.factories import OPTIMIZERS, PRESETS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--program", default="rag", help=f"program to compile: {', '.join(PROGRAMS)}")
    parser.add_argument("--optimizer", default="bootstrap", help=f"one of {', '.join(OPTIMIZERS)}")
    parser.add_argument("--budget", default="light", help=f"search effort preset: {', '.join(PRESETS)}")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override an optimizer hyper-parameter (JSON value), repeatable")
    parser.add_argument("--metric", help="objective: a metric/judge name or weights, e.g. token_f1=0.7,correctness=0.3 "
                        "(default: token_f1 for rag, answer_correctness=0.7,tool_selection=0.3 for agent)")
    parser.add_argument("--max-lm-calls", type=int, help="stop compiling after this many LM calls (best program so far is kept)")
    parser.add_argument("--max-tokens", type=int, help="stop compiling after this many billed tokens")
    parser.add_argument("--max-cost", type=float, help="stop compiling after this estimated cost in USD")
    parser.add_argument("--judge-lm", help="LiteLLM model string for the LLM judges (default: the task LM)")
    parser.add_argument("--reflection-lm", help="LiteLLM model string for GEPA's reflection (default: the task LM)")
    parser.add_argument("--eval-set", type=Path, help="eval set JSONL; default: the bundled demo QA set (rag) or agent tasks (agent)")
    parser.add_argument("--corpus", type=Path, help="folder to ingest into the collection first; default: the bundled demo corpus when the collection is empty")
    parser.add_argument("--collection", help="collection to compile against (default from tessera.yaml: docs)")
    parser.add_argument("--store", help="embedded store folder (default .tessera/store)")
    parser.add_argument("--train", type=int, help="train split size (default 30%% of the eval set)")
    parser.add_argument("--dev", type=int, help="dev split size (default 30%%)")
    parser.add_argument("--test", type=int, help="test split size (default the rest)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="parallel evaluation threads (1 for the embedded LM)")
    parser.add_argument("--max-answer-tokens", type=int, help="cap on answer length (default: max_tokens from the settings)")
    parser.add_argument("--out", type=Path, default=Path(".tessera/compiled"), help="where the compiled program is saved")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    parser.add_argument("--config", help="settings file (default ./tessera.yaml when present)")
    return parser.parse_args(argv)


def hyperparameters(pairs: list[str]) -> dict:
    values = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set {pair!r}: write NAME=VALUE, for example --set max_bootstrapped_demos=2.")
        try:
            values[name] = json.loads(raw)
        except json.JSONDecodeError:
            values[name] = raw
    return values


class ProgressPrinter:
    """Prints each stage of a compile; evaluation stages get a progress bar."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if done == 0:
            self.close()
            print(stage, flush=True)
            if total:
                self.bar = tqdm(total=total, unit="example")
        elif self.bar is not None:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@entry_point
def main() -> int:
    args = parse_args()
    if args.program not in PROGRAMS:
        raise ConfigError(f"Unknown program {args.program!r}. Valid programs: {', '.join(PROGRAMS)}.")

    from optimizers.budget import Budget
    from optimizers.compile import CompileRequest, parse_metric
    from optimizers.compile_job import CompileJob, run_compile_job

    overrides: dict = {"collection": args.collection, "max_tokens": args.max_answer_tokens, "judge_lm": args.judge_lm}
    if args.store:
        overrides["store"] = {"path": args.store}
    settings = load_settings(args.config, **overrides)
    try:
        budget = Budget(args.max_lm_calls, args.max_tokens, args.max_cost)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    request = CompileRequest(
        program=args.program,
        optimizer=args.optimizer,
        preset=args.budget,
        hyperparameters=hyperparameters(args.set),
        metric=parse_metric(args.metric) if args.metric else None,
        budget=budget,
        seed=args.seed,
        train=args.train,
        dev=args.dev,
        test=args.test,
        eval_set=args.eval_set,
        num_threads=args.threads,
        out_dir=args.out,
    )
    job = CompileJob(request, settings, reflection_lm=args.reflection_lm, corpus=args.corpus, track=not args.no_mlflow)
    printer = ProgressPrinter()
    try:
        report = run_compile_job(job, progress=printer)
    finally:
        printer.close()
    print()
    print(report.compile.summary())
    if report.model_uri:
        print(
            f"MLflow run {report.compile.run_id}; model {report.model_uri} registered as "
            f"{settings.tracking.registered_model!r}. Browse with: .venv/bin/mlflow ui"
        )
    return 0


if __name__ == "__main__":
    main()
