"""Query latency of the embedded store (Qdrant Edge) against qdrant-client local mode, at 100,000 chunks.

Data: the demo corpus is chunked and embedded for real (MiniLM); the rest of the points are synthetic but
shaped like it. Each synthetic point mixes two real chunks: its text recombines their sentences and its dense
vector is the same mix of their embeddings plus gaussian noise, renormalised, so BM25 and dense signals stay
consistent. The noise follows the real embeddings' covariance by default (`--noise covariance`), so it stays
in the subspace real MiniLM vectors occupy; `--noise isotropic` spreads it over all 384 dimensions, which
raises the data's intrinsic dimension and makes it markedly harder for HNSW. Queries are the QA-set questions, embedded before any timing starts. Every timed call is the
full `VectorStore.search` (engine scoring, RRF fusion, payload fetch), hybrid with k=10 and prefetch 50.

The baseline is the same data and queries through `QdrantStore` over `QdrantClient(path=...)` (local mode,
a pure-Python brute-force scan). It is slow, so it answers only the first `--baseline-queries` questions, and
the ratio baseline/edge p50 compares it with the edge store's latencies on those same questions.
Also reported: HNSW recall@10 of the edge store's approximate dense search against its exact search, and,
as a diagnostic through the engine directly (VectorStore has no such knob), the recall at larger `hnsw_ef`.

Both stores live on tmpfs (/dev/shm) when there is one: local mode commits to SQLite once per point, which on
a disk costs about 14 ms a point here (8 minutes for 20k points), and write durability is not what this measures.

    .venv/bin/python benchmarks/query_latency.py                 # 100,000 points (about 10 minutes on 2 cores)
    .venv/bin/python benchmarks/query_latency.py --points 20000  # a quick run
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import re
import shutil
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import qdrant_edge as qe
from qdrant_client import QdrantClient
from tqdm import tqdm

from pipeline.cli import entry_point
from pipeline.config import ChunkingSettings
from pipeline.documents import Chunk
from pipeline.ingest.chunking import make_chunker
from pipeline.ingest.files import list_files
from pipeline.ingest.parse import parse_file
from pipeline.qa_set import DEMO_CORPUS
from pipeline.retrieval.embed import DEFAULT_EMBEDDER, load_embedder
from pipeline.store.base import DENSE_VECTOR, VectorStore
from pipeline.store.bm25 import Bm25Encoder, SparseVector
from pipeline.store.edge import EdgeStore
from pipeline.store.factory import open_store
from pipeline.store.qdrant import QdrantStore

OUT_DIR = Path(__file__).resolve().parent.parent / ".benchmarks_out"
EVAL_SETS = Path(__file__).resolve().parent.parent / "eval_sets"
COLLECTION = "bench"
LIMIT = 10
PREFETCH = 50
UPSERT_CHUNK = 2048
WARMUP_QUERIES = 10
GOAL_HYBRID_P50_MS = 5.0
GOAL_RECALL = 0.95
NOISE_NORM = 0.3
"""Expected norm of the gaussian noise added to a synthetic point's mixed embedding (before renormalising)."""

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=100_000, help="points in the collection")
    parser.add_argument("--queries", type=int, default=200, help="QA questions to time on the edge store")
    parser.add_argument(
        "--baseline-queries", type=int, default=30,
        help="questions for the qdrant-client local-mode baseline (about 1 s per hybrid query at 100k)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--noise", choices=["covariance", "isotropic"], default="covariance",
        help="shape of the gaussian noise in synthetic dense vectors (see above)",
    )
    parser.add_argument(
        "--workdir", type=Path, default=_default_workdir(),
        help="where the two stores are built (default /dev/shm when writable, else the temp folder)",
    )
    return parser.parse_args()


@dataclass
class Dataset:
    chunks: list[Chunk]
    dense: np.ndarray
    sparse: list[SparseVector]
    real: int


@dataclass
class Timings:
    """Per-query latencies in milliseconds, by label."""

    ms: dict[str, list[float]] = field(default_factory=dict)

    def add(self, label: str, seconds: float) -> None:
        self.ms.setdefault(label, []).append(seconds * 1000.0)

    def stats(self, label: str, first: int | None = None) -> dict[str, float]:
        """Percentiles over the label's queries, or over its `first` queries only."""
        values = np.asarray(self.ms[label][:first])
        return {
            "queries": int(values.size),
            "p50_ms": float(np.percentile(values, 50)),
            "p99_ms": float(np.percentile(values, 99)),
            "mean_ms": float(values.mean()),
        }


def _default_workdir() -> Path:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def corpus_chunks() -> list[str]:
    chunking = ChunkingSettings()
    chunker = make_chunker(chunking.strategy, size=chunking.size, overlap=chunking.overlap)
    texts = []
    for path in list_files(DEMO_CORPUS)[0]:
        source = path.relative_to(DEMO_CORPUS).as_posix()
        for section in parse_file(path):
            texts.extend(chunk.text for chunk in chunker.split(section, source) if chunk.text.strip())
    return texts


def load_questions(count: int) -> list[str]:
    """QA questions from eval_sets/qa.jsonl, or its parts qa_part_*.jsonl when the whole file is absent."""
    whole = EVAL_SETS / "qa.jsonl"
    files = [whole] if whole.is_file() else sorted(EVAL_SETS.glob("qa_part_*.jsonl"))
    if not files:
        raise SystemExit(f"No QA set in {EVAL_SETS} (looked for qa.jsonl and qa_part_*.jsonl).")
    questions = []
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                questions.append(json.loads(line)["question"])
    if len(questions) < count:
        print(f"note: only {len(questions)} questions in {', '.join(p.name for p in files)}; using all of them")
    return questions[:count]


def build_dataset(points: int, base_texts: list[str], base_dense: np.ndarray, seed: int, noise: str) -> Dataset:
    """The real chunks first, then synthetic mixes of two real chunks until there are `points`."""
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    real = min(points, len(base_texts))
    sentences = []
    for text in base_texts:
        parts = [part.strip() for part in _SENTENCE.split(text) if len(part.split()) >= 3]
        sentences.append(parts or [text])

    synthetic = points - real
    first = rng.integers(0, len(base_texts), synthetic)
    second = rng.integers(0, len(base_texts), synthetic)
    weight = rng.uniform(0.5, 0.9, synthetic).astype(np.float32)
    dim = base_dense.shape[1]
    dense = np.empty((points, dim), dtype=np.float32)
    dense[:real] = base_dense[:real]
    # Covariance-shaped noise: gaussian coefficients over the centred real embeddings, N(0, their covariance),
    # scaled so that its expected norm is NOISE_NORM, as for the isotropic noise.
    centred = base_dense - base_dense.mean(axis=0)
    covariance_scale = NOISE_NORM / np.sqrt((centred**2).sum() / max(1, len(centred) - 1))
    covariance_scale /= np.sqrt(max(1, len(centred) - 1))
    for start in range(0, synthetic, 10_000):
        end = min(start + 10_000, synthetic)
        w = weight[start:end, None]
        mixed = w * base_dense[first[start:end]] + (1.0 - w) * base_dense[second[start:end]]
        if noise == "isotropic":
            mixed += rng.normal(0.0, NOISE_NORM / np.sqrt(dim), mixed.shape).astype(np.float32)
        else:
            coefficients = rng.normal(0.0, covariance_scale, (end - start, len(centred))).astype(np.float32)
            mixed += coefficients @ centred
        mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
        dense[real + start : real + end] = mixed

    texts = list(base_texts[:real])
    for a, b, w in zip(first.tolist(), second.tolist(), weight.tolist()):
        count = max(2, min(8, len(sentences[a]) + 1))
        from_a = max(1, round(count * w))
        parts = [pick.choice(sentences[a]) for _ in range(from_a)]
        parts += [pick.choice(sentences[b]) for _ in range(count - from_a)]
        pick.shuffle(parts)
        texts.append(" ".join(parts))

    bm25 = Bm25Encoder()
    sparse: list[SparseVector] = []
    for start in tqdm(range(0, len(texts), 5000), desc="BM25 encode", unit="5k docs", mininterval=2):
        sparse.extend(bm25.encode_documents(texts[start : start + 5000]))
    chunks = [
        Chunk(
            text=text,
            source=f"synthetic/{index % 997:03d}.md" if index >= real else "corpus.md",
            heading=(),
            start=0,
            end=len(text),
            id=str(uuid.UUID(int=index + 1)),
        )
        for index, text in enumerate(texts)
    ]
    return Dataset(chunks=chunks, dense=dense, sparse=sparse, real=real)


def fill(store: VectorStore, data: Dataset, desc: str) -> float:
    started = time.perf_counter()
    store.ensure_collection(COLLECTION, data.dense.shape[1])
    for start in tqdm(range(0, len(data.chunks), UPSERT_CHUNK), desc=desc, unit="batch", mininterval=2):
        end = start + UPSERT_CHUNK
        store.upsert(COLLECTION, data.chunks[start:end], data.dense[start:end], data.sparse[start:end])
    return time.perf_counter() - started


def timed_search(store: VectorStore, timings: Timings, label: str, **query) -> list[str]:
    started = time.perf_counter()
    hits = store.search(COLLECTION, limit=LIMIT, prefetch_limit=PREFETCH, **query)
    timings.add(label, time.perf_counter() - started)
    return [hit.chunk.id for hit in hits]


def engine_recall_by_ef(edge: EdgeStore, query_dense: np.ndarray, exact_ids: list[list[str]]) -> dict[str, dict]:
    """Recall@10 and mean latency of the bare engine's dense search at several `hnsw_ef` (None: the default)."""
    shard = edge._shard(COLLECTION)  # diagnostics only: the VectorStore interface has no hnsw_ef
    sweep = {}
    for ef in (None, 128, 256, 512):
        recalls, started = [], time.perf_counter()
        for vector, exact in zip(query_dense, exact_ids):
            points = shard.query(
                qe.QueryRequest(
                    limit=LIMIT,
                    query=qe.Query.Nearest(vector.tolist(), using=DENSE_VECTOR),
                    params=qe.SearchParams(hnsw_ef=ef),
                    with_payload=False,
                    with_vector=False,
                )
            )
            recalls.append(overlap([str(point.id) for point in points], exact))
        sweep[str(ef or "default")] = {
            "recall_at_10": float(np.mean(recalls)),
            "mean_ms": (time.perf_counter() - started) * 1000.0 / len(exact_ids),
        }
    return sweep


def overlap(a: list[str], b: list[str]) -> float:
    return len(set(a) & set(b)) / max(1, len(b))


@entry_point
def main() -> int:
    args = parse_args()
    if args.points < 1000:
        raise SystemExit("--points must be at least 1000.")
    phase_started = time.perf_counter()
    embedder = load_embedder(DEFAULT_EMBEDDER)
    bm25 = Bm25Encoder()

    base_texts = corpus_chunks()
    print(f"embedding {len(base_texts)} real chunks of {DEMO_CORPUS.name}/ ...", flush=True)
    base_dense = embedder.encode(base_texts)
    questions = load_questions(args.queries)
    query_dense = embedder.encode(questions)
    query_sparse = [bm25.encode_query(question) for question in questions]
    data = build_dataset(args.points, base_texts, base_dense, args.seed, args.noise)
    print(
        f"dataset: {len(data.chunks)} points ({data.real} real chunks, {len(data.chunks) - data.real} synthetic mixes, "
        f"{args.noise} noise of norm {NOISE_NORM}), "
        f"{data.dense.shape[1]} dims; {len(questions)} queries; setup {time.perf_counter() - phase_started:.0f}s"
    )

    work = Path(tempfile.mkdtemp(prefix="tessera-bench-query-", dir=args.workdir))
    print(f"stores in {work}")
    client = None
    try:
        edge_path = work / "edge"
        with open_store(path=edge_path) as edge:
            edge_upsert_s = fill(edge, data, "edge upsert")
            started = time.perf_counter()
        edge_index_s = time.perf_counter() - started  # close() builds HNSW (optimize) and flushes
        edge = EdgeStore(edge_path)  # what open_store(path=...) opens, typed so the shard can be inspected
        # Diagnostics only: EdgeStore does not expose shard info, so peek at the shard it opened.
        info = edge._shard(COLLECTION).info()
        print(
            f"edge store: upsert {edge_upsert_s:.1f}s, index build on close {edge_index_s:.1f}s; "
            f"{info.points_count} points in {info.segments_count} segments, {info.indexed_vectors_count} indexed vectors"
        )

        with warnings.catch_warnings():
            # Local mode warns that it is not meant for this many points; that is the point of the baseline.
            warnings.simplefilter("ignore")
            client = QdrantClient(path=str(work / "qdrant-local"))
            baseline = QdrantStore(client=client)
            baseline_upsert_s = fill(baseline, data, "qdrant-client local upsert")
        print(f"qdrant-client local mode: upsert {baseline_upsert_s:.1f}s")

        # The benchmark's own data (100k chunks and sparse vectors) is millions of long-lived objects; keep the
        # garbage collector from re-scanning them during timed calls, which no serving process would suffer.
        gc.collect()
        gc.freeze()

        edge_times = Timings()
        edge_hybrid_ids = []
        for i in range(min(WARMUP_QUERIES, len(questions))):
            edge.search(COLLECTION, dense=query_dense[i], sparse=query_sparse[i], limit=LIMIT, prefetch_limit=PREFETCH)
            edge.search(COLLECTION, dense=query_dense[i], limit=LIMIT)
        # Modes interleaved per query, so machine noise falls on both alike.
        for i in tqdm(range(len(questions)), desc="edge queries", mininterval=2):
            edge_hybrid_ids.append(timed_search(edge, edge_times, "hybrid", dense=query_dense[i], sparse=query_sparse[i]))
            timed_search(edge, edge_times, "dense", dense=query_dense[i])

        recalls, exact_times, exact_ids = [], Timings(), []
        for i in tqdm(range(len(questions)), desc="edge recall@10 (approximate vs exact)", mininterval=2):
            approximate = [hit.chunk.id for hit in edge.search(COLLECTION, dense=query_dense[i], limit=LIMIT)]
            exact_ids.append(timed_search(edge, exact_times, "exact", dense=query_dense[i], exact=True))
            recalls.append(overlap(approximate, exact_ids[-1]))
        recall = float(np.mean(recalls))
        ef_sweep = engine_recall_by_ef(edge, query_dense, exact_ids)

        # Baseline: the first n_base questions, in a loop of their own. Interleaved with it, edge queries ran
        # several times slower than back to back (its Python scans evict the caches and allocate heavily).
        n_base = min(args.baseline_queries, len(questions))
        local_times = Timings()
        agreement = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            baseline.search(COLLECTION, dense=query_dense[0], sparse=query_sparse[0], limit=LIMIT, prefetch_limit=PREFETCH)
            for i in tqdm(range(n_base), desc="qdrant-client local queries", mininterval=2):
                local_ids = timed_search(baseline, local_times, "hybrid", dense=query_dense[i], sparse=query_sparse[i])
                timed_search(baseline, local_times, "dense", dense=query_dense[i])
                agreement.append(overlap(edge_hybrid_ids[i], local_ids))
        edge.close()
        gc.unfreeze()
    finally:
        if client is not None:
            client.close()
        shutil.rmtree(work, ignore_errors=True)

    rows = [
        ("edge (Qdrant Edge)", "hybrid", edge_times.stats("hybrid")),
        ("edge (Qdrant Edge)", "dense", edge_times.stats("dense")),
        ("edge (Qdrant Edge)", "dense exact", exact_times.stats("exact")),
        ("edge, first n", "hybrid", edge_times.stats("hybrid", n_base)),
        ("edge, first n", "dense", edge_times.stats("dense", n_base)),
        ("qdrant-client local", "hybrid", local_times.stats("hybrid")),
        ("qdrant-client local", "dense", local_times.stats("dense")),
    ]
    print(f"\n{len(data.chunks)} points, k={LIMIT}, prefetch {PREFETCH}; latency of VectorStore.search in ms")
    print(f"{'store':<22}{'mode':<13}{'queries':>8}{'p50':>10}{'p99':>10}{'mean':>10}")
    for store_name, mode, stat in rows:
        print(f"{store_name:<22}{mode:<13}{stat['queries']:>8}{stat['p50_ms']:>10.2f}{stat['p99_ms']:>10.2f}{stat['mean_ms']:>10.2f}")
    print(
        f"baseline: qdrant-client local mode answered only the first {n_base} questions (it scans every point in "
        f"Python); with {n_base} samples its p99 is close to its maximum. 'edge, first n' is the edge store on "
        "those same questions; the ratio compares these two."
    )
    ratio_hybrid = local_times.stats("hybrid")["p50_ms"] / edge_times.stats("hybrid", n_base)["p50_ms"]
    ratio_dense = local_times.stats("dense")["p50_ms"] / edge_times.stats("dense", n_base)["p50_ms"]
    hybrid_p50 = edge_times.stats("hybrid")["p50_ms"]
    print(f"ratio baseline_p50/edge_p50: hybrid {ratio_hybrid:.0f}x, dense {ratio_dense:.0f}x")
    print(
        f"edge hybrid p50 {hybrid_p50:.2f} ms: {'meets' if hybrid_p50 <= GOAL_HYBRID_P50_MS else 'MISSES'} "
        f"the goal ≤ {GOAL_HYBRID_P50_MS} ms"
    )
    print(
        f"edge HNSW recall@10 vs exact over {len(recalls)} queries: {recall:.4f} "
        f"(min {min(recalls):.2f}); {'meets' if recall >= GOAL_RECALL else 'MISSES'} the goal ≥ {GOAL_RECALL}"
    )
    print(
        "engine-level dense recall@10 by hnsw_ef (diagnostic, bypasses VectorStore): "
        + ", ".join(f"{ef}: {row['recall_at_10']:.4f} ({row['mean_ms']:.2f} ms)" for ef, row in ef_sweep.items())
    )
    print(f"hybrid top-10 overlap, edge vs qdrant-client local, on the {n_base} baseline questions: {np.mean(agreement):.3f}")
    print(f"total run time {time.perf_counter() - phase_started:.0f}s")

    OUT_DIR.mkdir(exist_ok=True)
    result = {
        "benchmark": "query_latency",
        "points": len(data.chunks),
        "real_chunks": data.real,
        "queries": len(questions),
        "baseline_queries": n_base,
        "limit": LIMIT,
        "prefetch": PREFETCH,
        "machine": platform.platform(),
        "edge_upsert_s": edge_upsert_s,
        "edge_index_build_s": edge_index_s,
        "edge_segments": info.segments_count,
        "edge_indexed_vectors": info.indexed_vectors_count,
        "baseline_upsert_s": baseline_upsert_s,
        "edge": {"hybrid": edge_times.stats("hybrid"), "dense": edge_times.stats("dense"), "dense_exact": exact_times.stats("exact")},
        "edge_first_n": {"hybrid": edge_times.stats("hybrid", n_base), "dense": edge_times.stats("dense", n_base)},
        "qdrant_local": {"hybrid": local_times.stats("hybrid"), "dense": local_times.stats("dense")},
        "ratio_hybrid_p50": ratio_hybrid,
        "ratio_dense_p50": ratio_dense,
        "recall_at_10": recall,
        "recall_min": min(recalls),
        "engine_recall_by_hnsw_ef": ef_sweep,
        "noise": args.noise,
        "noise_norm": NOISE_NORM,
        "hybrid_overlap_edge_vs_local": float(np.mean(agreement)),
        "goal_hybrid_p50_ms": GOAL_HYBRID_P50_MS,
        "meets_latency_goal": hybrid_p50 <= GOAL_HYBRID_P50_MS,
        "goal_recall": GOAL_RECALL,
        "meets_recall_goal": recall >= GOAL_RECALL,
    }
    (OUT_DIR / "query_latency.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT_DIR / 'query_latency.json'}")
    return 0


if __name__ == "__main__":
    main()
