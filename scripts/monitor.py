"""Score recent served answers with the checks that need no ground truth, log the scores on their traces, and
print a per-day table with the drift against the window before.

    .venv/bin/python scripts/monitor.py --since 1h
    .venv/bin/python scripts/monitor.py --since 1d --window 7d --sample 200 --judge-lm openai/gpt-4.1-mini

Checks: answer_relevance and faithfulness (LLM judges, on --judge-lm, else judge_lm, else lm of tessera.yaml),
groundedness, guard_passed, latency_ms and cost_usd (from the trace). --since is the current window, --window the
length of the previous window it is compared with (default: as long as --since). Exit 0 also when there is
nothing to score; judge failures are counted and reported, and the job goes on.
"""

import argparse

from tqdm import tqdm

from pipeline.cli import entry_point


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--since", default="1h", help="current window, back from now: 90s, 30m, 1h, 7d (default 1h)")
    parser.add_argument("--window", help="length of the previous window compared with (default: as --since)")
    parser.add_argument("--sample", type=int, help="score at most N traces of each window (drawn at random)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and of the drift intervals")
    parser.add_argument("--judge-lm", help="LM the judges run on (LiteLLM string, local/..., scripted/<ms>)")
    parser.add_argument("--threads", type=int, default=1, help="judge calls at once (default 1; 8 suits a hosted LM)")
    parser.add_argument("--experiment", help="only this experiment's traces (default: every experiment)")
    parser.add_argument("--config", help="settings file (default ./tessera.yaml when present)")
    return parser.parse_args()


@entry_point
def main() -> int:
    args = parse_args()

    import mlflow

    from optimizers.monitoring import format_report, monitor
    from optimizers.served_traces import duration_ms, experiment_ids_named
    from optimizers.trace_checks import judge_lm_named
    from optimizers.tracking import tracking_uri
    from pipeline.config import load_settings
    from pipeline.errors import ConfigError
    from pipeline.serving.keys import lm_prices

    if args.sample is not None and args.sample < 1 or args.threads < 1:
        raise ConfigError("--sample and --threads take a positive whole number.")
    since, window = duration_ms(args.since), duration_ms(args.window) if args.window else None
    settings = load_settings(args.config)
    mlflow.set_tracking_uri(tracking_uri())
    judge_lm = judge_lm_named(args.judge_lm or settings.judge_lm or settings.lm, dtype=settings.embedded_dtype)
    prices = lm_prices(settings.lm, settings.serving.prompt_price_per_1k, settings.serving.completion_price_per_1k)
    with tqdm(desc="scoring", unit="trace", leave=False) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        report = monitor(judge_lm, since_ms=since, window_ms=window, sample=args.sample, seed=args.seed, prices=prices,
                         experiment_ids=experiment_ids_named(args.experiment), threads=args.threads, progress=progress)
    print(format_report(report))
    return 0


if __name__ == "__main__":
    main()
