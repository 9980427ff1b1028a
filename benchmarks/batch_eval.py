"""Batch evaluation throughput: the local engine's thread scaling, the Spark engine against the local engine, and
`--retriever-only` on the full QA sets. Every figure is a ratio against a baseline measured in the same run.

    threads    examples/s at 1, 2, 4, 8 threads against a scripted LM of fixed 200 ms latency, as a share of ideal
               (n x the 1-thread rate; goal >= 0.8 at 8), on the demo QA questions over a hashing-embedder index
    embedded   the same with the embedded LM (SmolLM2), 8 questions, 1 vs 2 threads
    spark      a registered model (scripted LM, 0 ms) answering the same questions on the local engine (default
               threads) and on Spark local[2] at a few sizes up to 2,000: rows/s and the size where Spark overtakes
    retrieval  `--retriever-only` wall time on qa.jsonl (demo corpus) and qa_thirdparty.jsonl (third-party docs),
               against the full mode with a 0 ms scripted LM on the same examples

    .venv/bin/python benchmarks/batch_eval.py                     # all of them (about 10 minutes on 2 cores)
    .venv/bin/python benchmarks/batch_eval.py --only threads embedded
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
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
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy  # noqa: E402
import numpy as np  # noqa: E402

from optimizers.batch.local_engine import evaluate_rows  # noqa: E402
from optimizers.batch.records import metric_names  # noqa: E402
from optimizers.batch.target import EvaluationTarget, load_target  # noqa: E402
from pipeline.config import Settings  # noqa: E402
from pipeline.lm.paced import PacedLM  # noqa: E402
from pipeline.qa_set import DEMO_CORPUS, DEMO_QA, bundled_path, load_qa  # noqa: E402

SECTIONS = ("threads", "embedded", "spark", "retrieval")


class HashingEmbedder:
    """Bag of hashed words: retrieval costs next to nothing, so the LM's latency is what the threads overlap."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim

    def encode(self, texts):
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                vectors[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def hashed_rag(folder: Path):
    from pipeline.ingest.chunking import make_chunker
    from pipeline.ingest.sync import Ingestor
    from pipeline.programs.rag import RAG
    from pipeline.retrieval.guarded import GuardedRetrieval
    from pipeline.retrieval.retriever import HybridRetriever
    from pipeline.store.factory import open_store

    embedder = HashingEmbedder()
    store = open_store(path=folder)
    Ingestor(store, "docs", embedder, make_chunker("structure", size=800, overlap=100)).sync(DEMO_CORPUS)
    return RAG(GuardedRetrieval(HybridRetriever(store, "docs", embedder, k=20), top_n=3)), store


def rate(target, examples, threads) -> float:
    started = time.perf_counter()
    rows = evaluate_rows(target, examples, metric_names("rag"), threads=threads)
    elapsed = time.perf_counter() - started
    failed = sum(1 for row in rows if row["error"])
    if failed:
        print(f"  ({failed} examples raised: {rows[[r['error'] != '' for r in rows].index(True)]['error']})")
    return len(examples) / elapsed


def bench_threads(scratch: Path, count: int) -> None:
    print(f"\n== threads: {count} demo questions, scripted LM at 200 ms per call ==")
    program, store = hashed_rag(scratch / "hashed")
    examples = load_qa(DEMO_QA)[:count]
    target = EvaluationTarget("hashed", "rag", program, Settings(), store, PacedLM(0.2), dspy.ChatAdapter())
    rate(target, examples[:4], 1)  # first calls import the metrics' packages and warm the index
    base = None
    print(f"{'threads':>7} {'examples/s':>11} {'x 1 thread':>11} {'share of ideal':>15} {'of LM-bound':>12}")
    for threads in (1, 2, 4, 8):
        value = rate(target, examples, threads)
        base = base or value
        # ideal: n x the measured 1-thread rate; LM-bound: n / 0.2 s, what the LM alone would allow
        print(f"{threads:>7} {value:>11.2f} {value / base:>11.2f} {value / (base * threads):>15.2f} "
              f"{value / (threads / 0.2):>12.2f}")
    store.close()


def bench_embedded(scratch: Path, count: int) -> None:
    from pipeline.lm.factory import make_lm
    from pipeline.lm.plain_adapter import adapter_for

    print(f"\n== embedded: {count} demo questions, SmolLM2 on the CPU ==")
    program, store = hashed_rag(scratch / "hashed-embedded")
    lm = make_lm("local/smollm2", max_tokens=32, cache=False)
    target = EvaluationTarget("hashed", "rag", program, Settings(), store, lm, adapter_for("local/smollm2"))
    examples = load_qa(DEMO_QA)[:count]
    rate(target, examples[:1], 1)  # loads the weights
    one = rate(target, examples, 1)
    two = rate(target, examples, 2)
    print(f"1 thread {one:.3f} examples/s, 2 threads {two:.3f} examples/s: x{two / one:.2f} "
          f"(share of ideal {two / (2 * one):.2f})")
    store.close()


def registered_model(scratch: Path) -> str:
    """The demo corpus indexed with the default embedder and registered as a RAG model in a throw-away store."""
    import mlflow

    from optimizers.tracking import log_program_model
    from pipeline.programs.rag import RAG
    from pipeline.wiring import build_ingestor, open_configured_store

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{scratch}/mlflow.db"
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    settings = Settings(store={"path": str(scratch / "store")},
                        tracking={"registered_model": f"bench-{uuid.uuid4().hex[:6]}"})
    with open_configured_store(settings) as store:
        build_ingestor(settings, store).sync(DEMO_CORPUS)
    program = scratch / "program.json"
    RAG(None).save(program)
    experiment = mlflow.create_experiment("batch-bench", artifact_location=(scratch / "artifacts").as_uri())
    run_id = mlflow.MlflowClient().create_run(experiment).info.run_id
    return log_program_model(run_id, program, settings, index_path=settings.store.path)


def bench_spark(scratch: Path, sizes: list[int]) -> None:
    from optimizers.batch.job import EvaluationJob, run_evaluation_job

    print(f"\n== spark: registered model, scripted LM at 0 ms, sizes {sizes} ==")
    os.environ["TESSERA_SERVING_LM"] = "scripted/0"
    uri = registered_model(scratch / "registry")
    questions = [json.loads(line) for line in DEMO_QA.read_text(encoding="utf-8").splitlines() if line.strip()]
    print(f"{'rows':>6} {'local rows/s':>13} {'spark rows/s':>13} {'spark / local':>14}")
    for size in sizes:
        rows = [{**questions[i % len(questions)], "id": f"r{i}"} for i in range(size)]
        path = scratch / f"questions-{size}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        timings = {}
        for engine in ("local", "spark"):
            job = EvaluationJob(eval_set=path, settings=Settings(), model=uri, engine=engine, track=False,
                                out=scratch / f"answers-{size}.parquet", spark_master="local[2]")
            started = time.perf_counter()
            run_evaluation_job(job)
            timings[engine] = size / (time.perf_counter() - started)
        ratio = timings["spark"] / timings["local"]
        print(f"{size:>6} {timings['local']:>13.1f} {timings['spark']:>13.1f} {ratio:>14.2f}")


def bench_retrieval(scratch: Path, sets: list[str]) -> None:
    from pipeline.lm.paced import scripted_lm
    from pipeline.wiring import build_ingestor, open_configured_store

    print("\n== retrieval: --retriever-only on the full QA sets (default embedder) vs the full mode (0 ms LM) ==")
    known = {"demo": (DEMO_CORPUS, DEMO_QA),
             "third-party": (bundled_path("thirdparty"), bundled_path("qa_thirdparty.jsonl"))}
    for name in sets:
        corpus, qa = known[name]
        settings = Settings(store={"path": str(scratch / f"store-{name}")})
        with open_configured_store(settings) as store:
            build_ingestor(settings, store).sync(corpus)
        examples = load_qa(qa)
        target = load_target(None, settings, with_lm=False)
        try:
            # warm: the embedder's and guards' first calls load and compile kernels
            evaluate_rows(target, examples[:8], metric_names("rag", retriever_only=True), retriever_only=True)
            started = time.perf_counter()
            rows = evaluate_rows(target, examples, metric_names("rag", retriever_only=True), retriever_only=True)
            alone = time.perf_counter() - started
            recall = sum(row["recall@5"] for row in rows) / len(rows)
            target.lm, target.adapter = scripted_lm("scripted/0"), dspy.ChatAdapter()
            started = time.perf_counter()
            evaluate_rows(target, examples, metric_names("rag"))
            full = time.perf_counter() - started
        finally:
            target.close()
        print(f"{name:<12} {len(examples)} examples: retriever-only {alone:.1f} s (recall@5 {recall:.3f}), "
              f"full mode {full:.1f} s: x{alone / full:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--count", type=int, default=48, help="questions for the thread benchmark")
    parser.add_argument("--embedded-count", type=int, default=8)
    parser.add_argument("--sets", nargs="+", choices=("demo", "third-party"), default=["demo", "third-party"],
                        help="QA sets for the retrieval benchmark")
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 800, 2000], help="rows for the Spark benchmark")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tessera-batch-bench-") as folder:
        scratch = Path(folder)
        if "threads" in args.only:
            bench_threads(scratch, args.count)
        if "embedded" in args.only:
            bench_embedded(scratch, args.embedded_count)
        if "retrieval" in args.only:
            bench_retrieval(scratch, args.sets)
        if "spark" in args.only:
            bench_spark(scratch, args.sizes)


if __name__ == "__main__":
    main()
