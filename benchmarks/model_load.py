"""Serving workers: how long one takes to load the registered model (goal: at most 20 s) and how much memory it holds.

Each worker is a fresh Python process, started N at a time as `mlflow models serve --workers N` starts them. A
worker reports, from its own start: seconds until `mlflow.pyfunc.load_model(uri)` returned (the model's
load_context: index unpacked, embedder, guards and the embedded LM's weights loaded), the seconds of that call
alone, its first answer, and its resident memory after loading and after the first answer. The baseline, run in
the same session and alternated with the model's workers, builds the same program in the worker directly from the
same settings and packed index (unpack, wiring.build_rag, the same LM and weights), with no MLflow model: the ratio
is what packaging the program as a model costs.

    .venv/bin/python benchmarks/model_load.py                        # registers the demo corpus, 2 workers, 2 runs
    .venv/bin/python benchmarks/model_load.py --workers 4 --runs 1
    .venv/bin/python benchmarks/model_load.py --model models:/tessera-rag@champion   # a model of your own store
    .venv/bin/python benchmarks/model_load.py --lm scripted/0        # without the embedded LM's weights
    .venv/bin/python benchmarks/model_load.py --reuse /tmp/tessera-bench-load-XXXX   # skip registering again
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

QUESTION = "How do I rotate the API keys?"

# Run in each worker: `started` is taken before any import, so import time counts as load time.
WORKER = """
import time
started = time.time()
import json, os, sys
mode, target, question = sys.argv[1:4]

def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024

if mode == "model":
    import mlflow, pandas as pd
    call = time.time()
    model = mlflow.pyfunc.load_model(target)
    ready = time.time()
    answer = lambda: model.predict(pd.DataFrame({"question": [question]}))["answer"][0]
else:
    import dspy
    from pipeline.config import Settings
    from pipeline.serving.program import serving_lm
    from pipeline.serving.snapshot import unpack_private_copy
    from pipeline.wiring import build_rag, open_configured_store
    call = time.time()
    spec = json.loads(open(target).read())
    settings = Settings(**spec["settings"])
    settings.store.path = unpack_private_copy(spec["archive"])
    store = open_configured_store(settings)
    program = build_rag(settings, store)
    lm, adapter = serving_lm(settings)
    ready = time.time()
    def answer():
        with dspy.context(lm=lm, **({"adapter": adapter} if adapter else {})):
            return program(question=question).answer
loaded_mb = rss_mb()
first = time.time()
text = answer()
done = time.time()
print(json.dumps({"ready_s": ready - started, "call_s": ready - call, "first_answer_s": done - first,
                  "loaded_mb": loaded_mb, "answered_mb": rss_mb(), "answer": text[:80]}), flush=True)
# A guard that timed out under load leaves its thread inside torch, which aborts interpreter teardown.
os._exit(0)
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a registered model URI (default: register the demo corpus in a temporary store)")
    parser.add_argument("--workers", type=int, default=2, help="workers started at once (default 2)")
    parser.add_argument("--runs", type=int, default=2, help="rounds of model and baseline workers, alternated")
    parser.add_argument("--lm", help="TESSERA_SERVING_LM for the workers, e.g. scripted/0 (default: the logged LM)")
    parser.add_argument("--reuse", type=Path, help="the folder a previous run registered the demo model in")
    return parser.parse_args()


def register_demo_model(root: Path, lm: str = "local/smollm2") -> tuple[str, Path]:
    """Ingest the bundled demo corpus into a store under `root`, register the uncompiled RAG program on it in a
    SQLite MLflow store there, and return (model URI, the baseline's settings and packed index)."""
    import mlflow

    from optimizers.tracking import log_program_model
    from pipeline.config import Settings
    from pipeline.programs.rag import RAG
    from pipeline.qa_set import DEMO_CORPUS
    from pipeline.serving.snapshot import pack_collection
    from pipeline.wiring import build_ingestor, open_configured_store

    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    os.environ["MLFLOW_TRACKING_URI"] = mlflow.get_tracking_uri()
    settings = Settings(lm=lm, store={"path": str(root / "store")}, tracking={"registered_model": f"bench-{uuid.uuid4().hex[:6]}"})
    with open_configured_store(settings) as store:
        build_ingestor(settings, store).sync(DEMO_CORPUS)
    program = root / "program.json"
    RAG(None).save(program)
    experiment = mlflow.create_experiment("benchmarks", artifact_location=(root / "artifacts").as_uri())
    run_id = mlflow.MlflowClient().create_run(experiment).info.run_id
    uri = log_program_model(run_id, program, settings, index_path=settings.store.path)
    (root / "model_uri.txt").write_text(uri, encoding="utf-8")
    archive = pack_collection(settings.store.path, settings.collection, root / "index.tar.gz")
    spec = root / "baseline.json"
    spec.write_text(json.dumps({"settings": settings.model_dump(mode="json", exclude={"store": {"api_key"}}),
                                "archive": str(archive)}), encoding="utf-8")
    return uri, spec


def start_workers(mode: str, target: str, count: int, lm: str | None) -> list[dict]:
    env = {**os.environ, **({"TESSERA_SERVING_LM": lm} if lm else {})}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, mode, target, QUESTION], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(count)]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=900)
        if worker.returncode != 0:
            raise SystemExit(f"a {mode} worker failed:\n{err[-3000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def summary(label: str, rows: list[dict]) -> dict:
    mean = {key: statistics.mean(row[key] for row in rows) for key in ("ready_s", "call_s", "first_answer_s", "loaded_mb", "answered_mb")}
    print(f"{label:<9} {len(rows):>7} {mean['ready_s']:>9.1f} {max(r['ready_s'] for r in rows):>7.1f} {mean['call_s']:>8.1f} "
          f"{mean['first_answer_s']:>8.1f} {mean['loaded_mb']:>9.0f} {mean['answered_mb']:>9.0f}")
    return mean


def main() -> None:
    args = parse_args()
    root = Path(tempfile.mkdtemp(prefix="tessera-bench-load-"))
    settings_file = None
    if args.model:
        uri = args.model
    elif args.reuse:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{args.reuse.resolve()}/mlflow.db"
        settings_file = args.reuse / "baseline.json"
        uri = (args.reuse / "model_uri.txt").read_text(encoding="utf-8").strip()
    else:
        started = time.perf_counter()
        uri, settings_file = register_demo_model(root)
        print(f"registered {uri} from the demo corpus in {time.perf_counter() - started:.0f} s ({root})")
    rows: dict[str, list[dict]] = {"model": [], "baseline": []}
    for run in range(args.runs):
        order = ("model", "baseline") if run % 2 == 0 else ("baseline", "model")
        for mode in order:
            if mode == "baseline" and settings_file is None:
                continue  # a model of the user's own store: its settings are not at hand for the baseline
            rows[mode] += start_workers(mode, uri if mode == "model" else str(settings_file), args.workers, args.lm)
    print(f"\n{args.workers} workers started at once, {args.runs} runs; LM: {args.lm or 'the logged LM'}; cpus: {os.cpu_count()}")
    print(f"{'':<9} {'workers':>7} {'ready s':>9} {'max s':>7} {'load s':>8} {'first s':>8} {'RSS MB':>9} {'+answer':>9}")
    model = summary("model", rows["model"])
    if rows["baseline"]:
        base = summary("baseline", rows["baseline"])
        print(f"ratio model/baseline: ready {model['ready_s'] / base['ready_s']:.2f}x, "
              f"memory after load {model['loaded_mb'] / base['loaded_mb']:.2f}x")
    verdict = "meets" if max(row["ready_s"] for row in rows["model"]) <= 20 else "misses"
    print(f"slowest worker ready in {max(row['ready_s'] for row in rows['model']):.1f} s: {verdict} the 20 s goal")
    print(f"answer: {rows['model'][0]['answer']!r}")


if __name__ == "__main__":
    main()
