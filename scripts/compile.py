"""Compile (optimize) the RAG program's prompts and demos with a DSPy optimizer, and log it all to MLflow.

Splits the eval set into train / dev / test (same seed, same split), scores the uncompiled program on dev and
test, compiles under the budget, scores the compiled program on dev and test, prints each metric before and
after with a 95% bootstrap CI of the difference, saves the compiled program and logs one MLflow run.
"""

import argparse
import json
from pathlib import Path

from pipeline.cli import entry_point
from pipeline.config import load_settings
from pipeline.errors import ConfigError

PROGRAMS = ("rag",)


def parse_args(argv=None) -> argparse.Namespace:
    from optimizers.factories import OPTIMIZERS, PRESETS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--program", default="rag", help=f"program to compile: {', '.join(PROGRAMS)}")
    parser.add_argument("--optimizer", default="bootstrap", help=f"one of {', '.join(OPTIMIZERS)}")
    parser.add_argument("--budget", default="light", help=f"search effort preset: {', '.join(PRESETS)}")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override an optimizer hyper-parameter (JSON value), repeatable")
    parser.add_argument("--metric", default="token_f1", help="objective: a metric/judge name or weights, e.g. token_f1=0.7,correctness=0.3")
    parser.add_argument("--max-lm-calls", type=int, help="stop compiling after this many LM calls (best program so far is kept)")
    parser.add_argument("--max-tokens", type=int, help="stop compiling after this many billed tokens")
    parser.add_argument("--max-cost", type=float, help="stop compiling after this estimated cost in USD")
    parser.add_argument("--judge-lm", help="LiteLLM model string for the LLM judges (default: the task LM)")
    parser.add_argument("--reflection-lm", help="LiteLLM model string for GEPA's reflection (default: the task LM)")
    parser.add_argument("--eval-set", type=Path, help="QA JSONL (question, answer, sources); default: the bundled demo set")
    parser.add_argument("--corpus", type=Path, help="folder to ingest into the collection first; default: the bundled demo corpus when the collection is empty")
    parser.add_argument("--collection", default="demo")
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


@entry_point
def main() -> int:
    args = parse_args()
    if args.program not in PROGRAMS:
        raise ConfigError(f"Unknown program {args.program!r}. Valid programs: {', '.join(PROGRAMS)}.")

    from optimizers.budget import Budget
    from optimizers.compile import CompileRequest, parse_metric, prepare, run_compile
    from pipeline.lm.factory import check_lm, make_lm
    from pipeline.qa_set import DEMO_CORPUS, DEMO_QA
    from pipeline.store.factory import require_collection
    from pipeline.wiring import build_ingestor, build_rag, configure_lm, open_configured_store

    overrides: dict = {"collection": args.collection}
    if args.store:
        overrides["store"] = {"path": args.store}
    if args.max_answer_tokens:
        overrides["max_tokens"] = args.max_answer_tokens
    if args.judge_lm:
        overrides["judge_lm"] = args.judge_lm
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
        metric=parse_metric(args.metric),
        budget=budget,
        seed=args.seed,
        train=args.train,
        dev=args.dev,
        test=args.test,
        eval_set=args.eval_set or DEMO_QA,
        num_threads=args.threads,
        out_dir=args.out,
    )
    # Everything checkable without an LM call is checked first: eval set, splits, metric and optimizer names,
    # the MLflow store. Making the LM object calls nothing (the embedded model loads on its first call).
    task_lm = configure_lm(settings)
    judge_lm = make_lm(settings.judge_lm, max_tokens=512) if settings.judge_lm and settings.judge_lm != settings.lm else None
    reflection_lm = make_lm(args.reflection_lm, temperature=1.0, max_tokens=4000) if args.reflection_lm else None
    prepared = prepare(request, judge_lm=judge_lm, reflection_lm=reflection_lm)
    if not args.no_mlflow:
        from optimizers.tracking import open_tracking

        print(f"MLflow: {open_tracking(settings.tracking.experiment)} (experiment {settings.tracking.experiment!r})")

    print(f"LM: {settings.lm}   judge LM: {settings.judge_lm or settings.lm}   embedder: {settings.embedder}")
    check_lm(task_lm)
    if judge_lm is not None:
        check_lm(judge_lm, "judge")
    if reflection_lm is not None:
        check_lm(reflection_lm, "reflection")

    with open_configured_store(settings) as store:
        corpus = args.corpus or (DEMO_CORPUS if not store.has_collection(settings.collection) else None)
        if corpus is not None:
            report = build_ingestor(settings, store).sync(corpus)
            print(f"indexed {corpus}: {report.chunks_written} chunks written, {len(report.unchanged)} files unchanged")
        require_collection(store, settings.collection)
        report = run_compile(
            request, build_rag(settings, store), prepared=prepared, settings=settings, track=not args.no_mlflow
        )
    print()
    print(report.summary())
    if report.run_id:
        from optimizers.tracking import log_program_model

        # After the store is closed, so the index snapshot in the model is complete.
        uri = log_program_model(report.run_id, report.program_path, settings, index_path=settings.store.path)
        print(f"MLflow run {report.run_id}; model {uri} registered as {settings.tracking.registered_model!r}. Browse with: .venv/bin/mlflow ui")
    return 0


if __name__ == "__main__":
    main()
