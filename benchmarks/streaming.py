"""Streaming with the embedded LM: time to the first streamed token against time to the full answer.

The registered model is loaded in this process and asked the first questions of the demo QA set twice each:
streamed (`predict_stream`: time to the first answer delta, time to the final event, number of deltas) and whole
(`predict`: time to the answer). The two alternate, streamed first for one question and whole first for the next,
so machine load falls on both alike; both run on a fresh thread, as a server runs them; DSPy's cache is off, so
every call generates. The ratios: first delta over
the whole answer (what a user waits before reading starts) and streamed total over whole (what streaming costs).

    .venv/bin/python benchmarks/streaming.py                    # registers the demo corpus, 5 questions
    .venv/bin/python benchmarks/streaming.py --questions 10 --model models:/tessera-rag@champion
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from model_load import register_demo_model  # the benchmarks folder is not a package

os.environ.pop("TESSERA_SERVING_LM", None)  # the logged LM: the embedded one


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a registered model URI (default: register the demo corpus in a temporary store)")
    parser.add_argument("--questions", type=int, default=5, help="questions of eval_sets/qa.jsonl to ask (default 5)")
    return parser.parse_args()


def streamed(model, question: str) -> dict:
    started = time.perf_counter()
    first, deltas, final = None, 0, None
    for event in model.predict_stream({"question": question}):
        if event["type"] == "delta":
            deltas += 1
            first = first if first is not None else time.perf_counter() - started
        else:
            final = event
    total = time.perf_counter() - started
    return {"first_s": first if first is not None else total, "total_s": total, "deltas": deltas, "answer": final["answer"]}


def whole(model, question: str) -> dict:
    import pandas as pd

    started = time.perf_counter()
    answer = model.predict(pd.DataFrame({"question": [question]}))["answer"][0]
    return {"total_s": time.perf_counter() - started, "answer": answer}


def on_a_worker_thread(function, *args):
    """Run `function` on a fresh thread, as a web server's thread pool runs a request. On a machine whose other load
    starves torch, generation on the main thread with torch's intra-op threads measured 11-15 s where the same call
    on a fresh thread took 2 s: both sides are measured off the main thread, so the ratio is streaming's alone."""
    result = {}
    worker = threading.Thread(target=lambda: result.update(function(*args)))
    worker.start()
    worker.join()
    return result


def main() -> None:
    args = parse_args()
    import dspy
    import mlflow

    from pipeline.qa_set import DEMO_QA

    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)  # every call generates
    uri = args.model
    if uri is None:
        root = Path(tempfile.mkdtemp(prefix="tessera-bench-stream-"))
        uri, _ = register_demo_model(root)
        print(f"registered {uri} from the demo corpus ({root})")
    started = time.perf_counter()
    model = mlflow.pyfunc.load_model(uri)
    print(f"loaded in {time.perf_counter() - started:.1f} s; LM {model.unwrap_python_model().served.lm.model}")
    questions = [json.loads(line)["question"] for line in DEMO_QA.read_text(encoding="utf-8").splitlines()[: args.questions]]
    on_a_worker_thread(whole, model, questions[0])  # warm-up: first-call costs are not streaming's
    rows = []
    for number, question in enumerate(questions):
        if number % 2 == 0:
            stream, plain = on_a_worker_thread(streamed, model, question), on_a_worker_thread(whole, model, question)
        else:
            plain, stream = on_a_worker_thread(whole, model, question), on_a_worker_thread(streamed, model, question)
        rows.append((stream, plain))
        print(f"  q{number + 1}: first delta {stream['first_s']:.2f} s, streamed {stream['total_s']:.2f} s "
              f"({stream['deltas']} deltas), whole {plain['total_s']:.2f} s")
    first = statistics.median(stream["first_s"] for stream, _ in rows)
    total = statistics.median(stream["total_s"] for stream, _ in rows)
    plain = statistics.median(plain["total_s"] for _, plain in rows)
    print(f"\nmedian over {len(rows)} questions: first delta {first:.2f} s, streamed answer {total:.2f} s, whole answer {plain:.2f} s")
    print(f"ratio first delta / whole answer: {first / plain:.2f}   streamed total / whole: {total / plain:.2f}")
    print(f"deltas per answer: {statistics.median(stream['deltas'] for stream, _ in rows):.0f}; "
          f"same answer streamed and whole: {sum(s['answer'] == p['answer'] for s, p in rows)}/{len(rows)}")


if __name__ == "__main__":
    main()
