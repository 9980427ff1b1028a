"""Online monitoring's cost: seconds to score N served traces (two scripted judges, the trace checks, the scores
logged back) against reading the same N traces alone, in one run; then a second pass over the same window, which
reads the logged scores back instead of judging again.

The traces are real served requests: the uncompiled RAG program on the bundled demo corpus, registered as a model
in a temporary SQLite store and called through its pyfunc `predict` with tracing on (scripted LM, so no LM time).

    .venv/bin/python benchmarks/monitor_scoring.py              # 50 traces, judge LM scripted/0
    .venv/bin/python benchmarks/monitor_scoring.py --traces 200 --judge-ms 50
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

QUESTIONS = ["How do I rotate the API keys?", "Which port does the admin API listen on?",
             "What is the default rate limit?", "Where are access logs written?"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=50)
    parser.add_argument("--judge-ms", type=int, default=0, help="the scripted judge LM's latency per call")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import mlflow
    import pandas as pd
    from model_load import register_demo_model

    from optimizers.monitoring import monitor
    from optimizers.served_traces import find_served_traces, now_ms
    from optimizers.trace_checks import judge_lm_named

    root = Path(tempfile.mkdtemp(prefix="tessera-bench-monitor-"))
    uri, _ = register_demo_model(root)
    os.environ["TESSERA_SERVING_LM"] = "scripted/0"
    model = mlflow.pyfunc.load_model(uri)
    experiment = mlflow.create_experiment("served", artifact_location=(root / "served").as_uri())
    mlflow.set_experiment(experiment_id=experiment)
    started_ms = now_ms()
    mlflow.tracing.enable()
    for number in range(args.traces):
        model.predict(pd.DataFrame({"question": [QUESTIONS[number % len(QUESTIONS)]]}))
    mlflow.flush_trace_async_logging()
    mlflow.tracing.disable()
    since = now_ms() - started_ms + 1000

    started = time.perf_counter()
    read = find_served_traces(now_ms() - since, experiment_ids=[experiment])
    read_s = time.perf_counter() - started
    judge = judge_lm_named(f"scripted/{args.judge_ms}")
    started = time.perf_counter()
    first = monitor(judge, since_ms=since, window_ms=1, experiment_ids=[experiment], threads=args.threads)
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    second = monitor(judge, since_ms=since + 60_000, window_ms=1, experiment_ids=[experiment], threads=args.threads)
    second_s = time.perf_counter() - started

    print(f"{len(read)} served traces ({len(first.current)} scored, {first.judge_calls} judge calls, judge "
          f"scripted/{args.judge_ms}, {args.threads} thread(s))")
    print(f"read the traces alone:          {read_s:7.2f} s  ({read_s / len(read) * 1000:6.1f} ms/trace)  1.00x")
    print(f"monitor, first pass (judges):   {first_s:7.2f} s  ({first_s / len(read) * 1000:6.1f} ms/trace)  "
          f"{first_s / read_s:.2f}x")
    print(f"monitor, second pass (reused):  {second_s:7.2f} s  ({second_s / len(read) * 1000:6.1f} ms/trace)  "
          f"{second_s / read_s:.2f}x  ({second.judge_calls} judge calls)")


if __name__ == "__main__":
    main()
