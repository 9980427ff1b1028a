"""Serving load test on loopback: `scripts/serve.py` and `mlflow models serve` side by side on one registered model
with a fixed-latency scripted LM, against the same model called in-process, batches interleaved in one run.

For each path: throughput, p50 / p99 latency at concurrency 8, and the overhead per request over the in-process
call at the same concurrency (goal <= 10 ms at p50). Also: time to each server's first healthy answer, the model
load time and resident memory of each worker, and time to the first streamed token against the full answer.

    .venv/bin/python benchmarks/serving_load.py [--requests 300] [--latency-ms 20]
    TESSERA_SERVING_LM=scripted/20 .venv/bin/python benchmarks/serving_load.py --model models:/tessera-rag@champion

Without --model it registers the scripted served model of the HTTP tests (tests/pipeline/serving/) in a temporary
MLflow store; with --model it serves that registered model from MLFLOW_TRACKING_URI.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".benchmarks_out"
SCRIPTED = ROOT / "tests" / "pipeline" / "serving"
QUESTION = "Which port does the admin API listen on? ({})"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(command: list[str], env: dict, ready: str, cwd: Path) -> tuple[subprocess.Popen, float]:
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    while time.perf_counter() - started < 300:
        if process.poll() is not None:
            raise SystemExit(f"{' '.join(command[:3])} exited: {process.stderr.read()[-3000:]}")
        try:
            if httpx.get(ready, timeout=2).status_code == 200:
                return process, time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop(process)
    raise SystemExit(f"{ready} did not answer within 300 s")


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def worker_rss_mb(pid: int) -> list[float]:
    """Resident memory of the worker processes (multiprocessing children) under server `pid`."""
    sizes = []
    for child in descendants(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = Path(f"/proc/{child}/status").read_text()
        except OSError:
            continue
        if "multiprocessing" in command and "resource_tracker" not in command:
            sizes.append(int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) / 1024)
    return sizes


def http_batch(client: httpx.Client, url: str, bodies: list[dict], concurrency: int,
               failures: list[str] | None = None) -> tuple[list[float], float]:
    """Latencies of `bodies` posted `concurrency` at a time; a failed request ends the run unless `failures`
    collects it (the warm-up does: a worker may fail its first requests)."""

    def one(body: dict) -> float:
        started = time.perf_counter()
        response = client.post(url, json=body)
        if response.status_code != 200:
            if failures is None:
                raise SystemExit(f"{url}: {response.status_code} {response.text[:300]}")
            failures.append(f"{response.status_code} {response.text[-200:]}")
        return (time.perf_counter() - started) * 1000

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, bodies))
    return latencies, time.perf_counter() - started


def in_process_batch(model, questions: list[str], concurrency: int) -> tuple[list[float], float]:
    import pandas as pd

    def one(question: str) -> float:
        started = time.perf_counter()
        model.predict(pd.DataFrame({"question": [question]}))
        return (time.perf_counter() - started) * 1000

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, questions))
    return latencies, time.perf_counter() - started


def first_token_ms(base: str, name: str, count: int) -> tuple[list[float], list[float]]:
    """Time to the first streamed text delta and to the end of the stream, one request after another."""
    first, full = [], []
    with httpx.Client(timeout=120) as client:
        for number in range(count):
            started, seen = time.perf_counter(), None
            body = {"model": name, "stream": True, "messages": [{"role": "user", "content": QUESTION.format(number)}]}
            with client.stream("POST", f"{base}/v1/chat/completions", json=body) as response:
                if response.status_code != 200:
                    raise SystemExit(f"streamed chat: {response.status_code} {response.read()[:300]!r}")
                for line in response.iter_lines():
                    if seen is None and line.startswith("data: {") and '"content":"' in line and '"content":""' not in line:
                        seen = time.perf_counter()
            full.append((time.perf_counter() - started) * 1000)
            first.append(((seen or time.perf_counter()) - started) * 1000)
    return first, full


def register_scripted(folder: Path) -> str:
    sys.path.insert(0, str(SCRIPTED))
    from http_fixtures import register_scripted_model

    return register_scripted_model(folder / "model")


def summary(latencies: list[float], wall: float) -> dict:
    return {"requests": len(latencies), "throughput_rps": len(latencies) / wall, "p50_ms": statistics.median(latencies),
            "p99_ms": percentile(latencies, 99), "mean_ms": statistics.mean(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="registered model URI (default: register the scripted served model)")
    parser.add_argument("--requests", type=int, default=300, help="requests per path (at least 300 for the report)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=20.0, help="the scripted LM's fixed latency")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved batches per path")
    parser.add_argument("--sequential", type=int, default=60, help="requests per path one at a time (no queueing)")
    parser.add_argument("--streams", type=int, default=10, help="streamed requests for time to first token")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="tessera-serving-load-"))
    if args.model:
        from optimizers.tracking import tracking_uri

        os.environ.setdefault("MLFLOW_TRACKING_URI", tracking_uri())
    else:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{scratch / 'mlflow.db'}"
    os.environ["SCRIPTED_LATENCY_MS"] = str(args.latency_ms)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    from pipeline.serving.registry import load_verified_model

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    uri = args.model or register_scripted(scratch)
    name = uri.removeprefix("models:/").split("@")[0].split("/")[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_SERVING__")}
    env.update(PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}", TESSERA_SERVING__USAGE_LOG=str(scratch / "usage.jsonl"),
               TESSERA_SERVING__TRACING="false", TESSERA_SERVING__API_KEYS_FILE=str(scratch / "no-keys.json"))

    started = time.perf_counter()
    model = load_verified_model(uri, scratch / "in-process")
    in_process_load_s = time.perf_counter() - started
    ours_port, theirs_port = free_port(), free_port()
    ours, ours_start_s = start([sys.executable, str(ROOT / "scripts" / "serve.py"), "--model", uri, "--port", str(ours_port),
                                "--workers", str(args.workers)], env, f"http://127.0.0.1:{ours_port}/health", scratch)
    theirs, theirs_start_s = start([str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", uri, "--env-manager",
                                    "local", "--host", "127.0.0.1", "-p", str(theirs_port), "--workers", str(args.workers)],
                                   env, f"http://127.0.0.1:{theirs_port}/ping", scratch)
    try:
        ours_base, theirs_base = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{theirs_port}"
        loads = sorted({httpx.get(f"{ours_base}/health").json()["load_s"] for _ in range(20)})
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
        paths = {
            "serve.py /v1/chat/completions": (f"{ours_base}/v1/chat/completions",
                                              lambda q: {"model": name, "messages": [{"role": "user", "content": q}]}),
            "serve.py /invocations": (f"{ours_base}/invocations", lambda q: {"dataframe_records": [{"question": q}]}),
            "mlflow models serve /invocations": (f"{theirs_base}/invocations", lambda q: {"dataframe_records": [{"question": q}]}),
        }
        results: dict[str, tuple[list[float], float]] = {label: ([], 0.0) for label in [*paths, "in-process predict"]}
        per_round = max(1, args.requests // args.rounds)
        failed_warming: dict[str, list[str]] = {}
        with httpx.Client(timeout=120, limits=limits) as client:
            for label, (url, body) in paths.items():  # warm every path and connection; first requests may fail
                warm = [body(QUESTION.format(n)) for n in range(2 * args.concurrency)]
                http_batch(client, url, warm, args.concurrency, failed_warming.setdefault(label, []))
                http_batch(client, url, warm, args.concurrency)
            in_process_batch(model, [QUESTION.format(n) for n in range(2 * args.concurrency)], args.concurrency)
            for round_number in range(args.rounds):
                order = list(results)[round_number % 4:] + list(results)[:round_number % 4]
                questions = [QUESTION.format(round_number * per_round + n) for n in range(per_round)]
                for label in order:
                    if label == "in-process predict":
                        latencies, wall = in_process_batch(model, questions, args.concurrency)
                    else:
                        url, body = paths[label]
                        latencies, wall = http_batch(client, url, [body(q) for q in questions], args.concurrency)
                    results[label] = (results[label][0] + latencies, results[label][1] + wall)
            questions = [QUESTION.format(n) for n in range(args.sequential)]
            sequential = {label: http_batch(client, url, [body(q) for q in questions], 1)[0]
                          for label, (url, body) in paths.items()}
            sequential["in-process predict"] = in_process_batch(model, questions, 1)[0]
        first, full = first_token_ms(ours_base, name, args.streams)
        memory = {"serve.py": worker_rss_mb(ours.pid), "mlflow models serve": worker_rss_mb(theirs.pid)}
    finally:
        stop(ours)
        stop(theirs)

    figures = {label: summary(*values) for label, values in results.items()}
    baseline = figures["in-process predict"]["p50_ms"]
    alone = {label: statistics.median(values) for label, values in sequential.items()}
    for label in paths:
        figures[label]["overhead_p50_ms"] = figures[label]["p50_ms"] - baseline
        figures[label]["p50_ratio_to_in_process"] = figures[label]["p50_ms"] / baseline
        figures[label]["sequential_p50_ms"] = alone[label]
        figures[label]["sequential_overhead_p50_ms"] = alone[label] - alone["in-process predict"]
    figures["in-process predict"]["sequential_p50_ms"] = alone["in-process predict"]
    report = {
        "model": uri, "latency_ms": args.latency_ms, "concurrency": args.concurrency, "workers": args.workers,
        "paths": figures, "serve_py_start_s": ours_start_s, "mlflow_serve_start_s": theirs_start_s,
        "serve_py_worker_load_s": loads, "in_process_load_s": in_process_load_s, "worker_rss_mb": memory,
        "stream_first_token_p50_ms": statistics.median(first), "stream_full_answer_p50_ms": statistics.median(full),
        "failed_warm_up_requests": failed_warming,
    }
    print(f"{uri}: scripted LM {args.latency_ms:g} ms, concurrency {args.concurrency}, {args.workers} workers, "
          f"{per_round * args.rounds} requests per path in {args.rounds} interleaved rounds")
    print(f"{'path':<34}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'overhead p50':>14}{'alone p50':>11}{'overhead':>10}")
    for label, row in figures.items():
        overhead = f"{row['overhead_p50_ms']:>+11.2f} ms" if "overhead_p50_ms" in row else f"{'(baseline)':>14}"
        extra = f"{row['sequential_overhead_p50_ms']:>+7.2f} ms" if "sequential_overhead_p50_ms" in row else f"{'':>10}"
        print(f"{label:<34}{row['throughput_rps']:>8.1f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}{overhead}"
              f"{row['sequential_p50_ms']:>11.2f}{extra}")
    print(f"(concurrency {args.concurrency}: p50/p99 and overhead over in-process at the same concurrency; "
          f"alone: {args.sequential} requests one at a time)")
    ours_over = figures["serve.py /invocations"]["overhead_p50_ms"]
    theirs_over = figures["mlflow models serve /invocations"]["overhead_p50_ms"]
    print(f"/invocations overhead p50: serve.py {ours_over:.2f} ms vs mlflow models serve {theirs_over:.2f} ms")
    print(f"start to first healthy answer: serve.py {ours_start_s:.1f} s, mlflow models serve {theirs_start_s:.1f} s; "
          f"serve.py worker load {', '.join(f'{s:.2f}' for s in loads)} s (in-process load {in_process_load_s:.2f} s)")
    print("worker RSS MB: " + "; ".join(f"{k} {', '.join(f'{v:.0f}' for v in sizes)}" for k, sizes in memory.items()))
    print(f"streamed chat ({args.streams} requests): first token p50 {report['stream_first_token_p50_ms']:.1f} ms, "
          f"full answer p50 {report['stream_full_answer_p50_ms']:.1f} ms")
    for label, failures in failed_warming.items():
        if failures:
            print(f"{label}: {len(failures)} of the first {2 * args.concurrency} concurrent requests failed, e.g. {failures[0]}")
    OUT.mkdir(exist_ok=True)
    (OUT / "serving_load.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
