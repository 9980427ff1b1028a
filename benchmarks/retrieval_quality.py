"""Retrieval quality on the demo QA set: recall@5, MRR and nDCG@5 on source documents, per retrieval configuration.

Ingests eval_sets/corpus into a throw-away embedded store with the default settings (override the chunking
with --chunking/--size/--overlap), then ranks the chunks for every QA question with:

    dense, bm25, hybrid (RRF)        first-stage retrieval only, top `--depth` chunks
    hybrid+maxsim, dense+maxsim      MaxSim rerank of that stage's top `--depth` chunks

Each configuration yields a ranked list of `--depth` chunks (a reranker re-orders all of them, so its first
5 chunks are exactly "rerank the top 20, keep 5"). Scores are computed on source documents (chunk -> its
`source`, de-duplicated at first occurrence) in two views:

    docs@5   the first 5 distinct sources of the whole ranked list (all configurations get the same depth)
    ctx@5    the sources of the first 5 chunks only, i.e. what a generator given top_n=5 chunks would see

The baseline is `hybrid` without rerank, measured in the same run: the table shows each configuration's
nDCG@5 difference and its latency ratio against it, and whether MaxSim's nDCG@5 change is significant (paired
bootstrap over questions). Latency is retrieve + rerank per question with the reranker's chunk cache on; the
`cold` column re-times the rerank with the cache cleared on a sample.

    .venv/bin/python benchmarks/retrieval_quality.py --threads 1
    .venv/bin/python benchmarks/retrieval_quality.py --threads 1 --chunking recursive

Options marked "experiment" (--rrf-k, --bm25-weight, --retrieval-weight) try settings the
library does not expose as configuration, by patching this process only. --store DIR keeps the index between
runs (one collection per chunking), so experiments that do not change chunking skip the ingest.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

import pipeline.store.base  # noqa: E402
import pipeline.store.engine  # noqa: E402
from optimizers.evaluation import paired_bootstrap_ci  # noqa: E402
from optimizers.metrics.retrieval import mrr, ndcg_at_k, recall_at_k  # noqa: E402
from pipeline.config import load_settings  # noqa: E402
from pipeline.documents import Hit  # noqa: E402
from pipeline.qa_set import DEMO_CORPUS, load_qa  # noqa: E402
from pipeline.retrieval.rerank import MaxSimReranker  # noqa: E402
from pipeline.retrieval.retriever import HybridRetriever  # noqa: E402
from pipeline.store.factory import open_store  # noqa: E402
from pipeline.wiring import build_ingestor  # noqa: E402

EVAL_SETS = ROOT / "eval_sets"
OUT_DIR = ROOT / ".benchmarks_out"
CUTOFF = 5
GOAL_RECALL = 0.85
BASELINE = "hybrid"
DEFAULT_CONFIG = "hybrid+maxsim"
CONFIGS = (("dense", "dense", False), ("bm25", "bm25", False), ("hybrid", "hybrid", False),
           ("hybrid+maxsim", "hybrid", True), ("dense+maxsim", "dense", True))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunking", choices=["structure", "recursive", "tokens", "semantic"], help="chunking strategy (default: settings)")
    parser.add_argument("--size", type=int, help="chunk size (default: settings)")
    parser.add_argument("--overlap", type=int, help="chunk overlap (default: settings)")
    parser.add_argument("--prefetch-k", type=int, help="candidates per leg before RRF fusion (default: settings)")
    parser.add_argument("--depth", type=int, default=20, help="chunks retrieved per question, and reranked (default 20)")
    parser.add_argument("--rrf-k", type=int, default=pipeline.store.base.RRF_K,
                        help=f"experiment: RRF constant for hybrid fusion (library value {pipeline.store.base.RRF_K})")
    parser.add_argument("--bm25-weight", type=float, default=1.0,
                        help="experiment: weight of the BM25 list in hybrid RRF (library: 1, same as dense); patches fusion in this process")
    parser.add_argument("--retrieval-weight", type=float, default=0.0,
                        help="experiment: MaxSimReranker retrieval_weight (fuse MaxSim rank with the incoming rank; default 0 = library default)")
    parser.add_argument("--qa", type=Path, help="QA JSONL (default eval_sets/qa.jsonl, else qa_part_a + qa_part_b)")
    parser.add_argument("--limit", type=int, help="only the first N questions (quick experiments)")
    parser.add_argument("--cold-sample", type=int, default=20, help="questions timed again with the rerank cache cleared (default 20)")
    parser.add_argument("--store", type=Path, help="keep the index in this folder and reuse it across runs (default: a temp folder)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice, one per core); "
                        "1 avoids spinning threads slowing each other on a shared, loaded machine")
    parser.add_argument("--failures", type=int, default=0, help="print up to N questions the default configuration misses")
    parser.add_argument("--name", help="output name: .benchmarks_out/NAME.json (default derived from the options)")
    return parser.parse_args()


def qa_files(explicit: Path | None) -> list[Path]:
    if explicit is not None:
        return [explicit]
    merged = EVAL_SETS / "qa.jsonl"
    if merged.is_file():
        return [merged]
    return [EVAL_SETS / "qa_part_a.jsonl", EVAL_SETS / "qa_part_b.jsonl"]


@dataclass
class ConfigResult:
    name: str
    docs: dict[str, list[float]] = field(default_factory=lambda: {"recall": [], "mrr": [], "ndcg": [], "hit": []})
    ctx: dict[str, list[float]] = field(default_factory=lambda: {"recall": [], "mrr": [], "ndcg": [], "hit": []})
    seconds: list[float] = field(default_factory=list)
    rerank_seconds: list[float] = field(default_factory=list)
    cold_rerank_seconds: list[float] = field(default_factory=list)
    rankings: list[list[str]] = field(default_factory=list)

    def add(self, sources: list[str], gold: list[str], seconds: float, rerank_seconds: float) -> None:
        for view, ranked in ((self.docs, sources), (self.ctx, sources[:CUTOFF])):
            recall = recall_at_k(ranked, gold, CUTOFF)
            view["recall"].append(recall)
            view["mrr"].append(mrr(ranked, gold))
            view["ndcg"].append(ndcg_at_k(ranked, gold, CUTOFF))
            view["hit"].append(1.0 if recall > 0 else 0.0)
        self.seconds.append(seconds)
        self.rerank_seconds.append(rerank_seconds)
        self.rankings.append(list(dict.fromkeys(sources)))

    def summary(self) -> dict:
        def means(view: dict[str, list[float]]) -> dict[str, float]:
            return {metric: statistics.fmean(values) for metric, values in view.items()}

        return {
            "docs@5": means(self.docs),
            "ctx@5": means(self.ctx),
            "latency_ms_mean": 1000 * statistics.fmean(self.seconds),
            "latency_ms_p50": 1000 * statistics.median(self.seconds),
            "latency_ms_p95": 1000 * sorted(self.seconds)[int(0.95 * (len(self.seconds) - 1))],
            "rerank_ms_mean": 1000 * statistics.fmean(self.rerank_seconds),
            "rerank_ms_cold_mean": 1000 * statistics.fmean(self.cold_rerank_seconds) if self.cold_rerank_seconds else 0.0,
        }


def weighted_fusion(bm25_weight: float):
    """Experiment: RRF where the BM25 list (the second leg, after dense) counts `bm25_weight` times."""

    def fuse(rankings, limit):
        fused: dict[str, float] = {}
        for leg, ranking in enumerate(rankings):
            weight = bm25_weight if leg == 1 else 1.0
            for rank, (point_id, _) in enumerate(ranking, start=1):
                fused[point_id] = fused.get(point_id, 0.0) + weight / (pipeline.store.base.RRF_K + rank)
        return pipeline.store.base.rank_by_score(list(fused.items()), limit)

    return fuse


def run(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    chunking = {key: value for key, value in
                (("strategy", args.chunking), ("size", args.size), ("overlap", args.overlap)) if value is not None}
    overrides: dict = {"chunking": chunking} if chunking else {}
    if args.prefetch_k is not None:
        overrides["retrieval"] = {"prefetch_k": args.prefetch_k}
    defaults = load_settings(**overrides)
    # One collection per chunking, so a reused --store never serves chunks cut another way.
    collection = "bench_{strategy}_{size}_{overlap}".format(**defaults.chunking.model_dump())
    examples = [example for path in qa_files(args.qa) for example in load_qa(path)][: args.limit]
    pipeline.store.base.RRF_K = args.rrf_k  # read at call time by fuse_rankings; only changed on request
    if args.bm25_weight != 1.0:
        pipeline.store.engine.fuse_rankings = weighted_fusion(args.bm25_weight)  # the name the search calls
    place = contextlib.nullcontext(str(args.store)) if args.store else tempfile.TemporaryDirectory(prefix="tessera-bench-")
    with place as folder:
        settings = load_settings(**overrides, collection=collection, store={"path": folder})
        with open_store(path=folder) as store:
            ingestor = build_ingestor(settings, store)
            report = ingestor.sync(DEMO_CORPUS)
            if report.failed:
                raise SystemExit(f"ingest failed for {report.failed}")
            chunk_lengths = [len(payload.get("text", "")) for _, payload in store.scan(collection, ["text"])]
            results = evaluate(store, settings, ingestor.embedder, examples, args)
    return {
        "settings": {
            "chunking": settings.chunking.model_dump(),
            "retrieval": {"depth": args.depth, "prefetch_k": settings.retrieval.prefetch_k, "rrf_k": args.rrf_k,
                          "bm25_weight": args.bm25_weight},
            "rerank": {"kind": "maxsim", "retrieval_weight": args.retrieval_weight, "keep": CUTOFF},
            "embedder": settings.embedder,
            "torch_threads": torch.get_num_threads(),
        },
        "qa_files": [str(path.relative_to(ROOT)) for path in qa_files(args.qa)],
        "questions": len(examples),
        "corpus": {"files": len(report.indexed) + len(report.unchanged), "chunks": len(chunk_lengths),
                   "chunk_chars_mean": statistics.fmean(chunk_lengths), "chunk_chars_max": max(chunk_lengths),
                   "ingest_seconds": report.seconds, "reused_index": not report.indexed},
        "results": results,
        "examples": examples,
    }


def evaluate(store, settings, embedder, examples, args: argparse.Namespace) -> dict[str, ConfigResult]:
    retrievers = {
        mode: HybridRetriever(store, settings.collection, embedder, mode=mode, k=args.depth,
                              prefetch_k=settings.retrieval.prefetch_k)
        for mode in ("dense", "bm25", "hybrid")
    }
    for retriever in retrievers.values():  # warm-up: model threads, engine pages, tokenizer caches
        retriever.retrieve(examples[0].question)
    reranker = MaxSimReranker(embedder, retrieval_weight=args.retrieval_weight)
    reranker.rerank(examples[0].question, retrievers["hybrid"].retrieve(examples[0].question), CUTOFF)
    results = {name: ConfigResult(name) for name, _, _ in CONFIGS}
    for example in tqdm(examples, desc="questions", unit="q", file=sys.stderr):
        for name, mode, rerank in CONFIGS:
            started = time.perf_counter()
            hits: list[Hit] = retrievers[mode].retrieve(example.question)
            reranked_at = time.perf_counter()
            if rerank:
                # The library's chunk-token cache stays on, as when serving: chunks seen before are not re-embedded.
                hits = reranker.rerank(example.question, hits, len(hits))
            finished = time.perf_counter()
            results[name].add([hit.chunk.source for hit in hits], list(example.sources),
                              finished - started, finished - reranked_at if rerank else 0.0)
    # A first-time question pays for embedding all its chunks' tokens: time that on a sample, cache cleared each time.
    for example in tqdm(examples[: args.cold_sample], desc="cold rerank", unit="q", file=sys.stderr):
        for name, mode, rerank in CONFIGS:
            if rerank:
                hits = retrievers[mode].retrieve(example.question)
                reranker.clear_cache()
                started = time.perf_counter()
                reranker.rerank(example.question, hits, len(hits))
                results[name].cold_rerank_seconds.append(time.perf_counter() - started)
    return results


def print_table(outcome: dict) -> None:
    results: dict[str, ConfigResult] = outcome["results"]
    summaries = {name: result.summary() for name, result in results.items()}
    base = summaries[BASELINE]
    settings = outcome["settings"]
    corpus = outcome["corpus"]
    print(f"\nchunking: {settings['chunking']}   depth {settings['retrieval']['depth']}, prefetch_k "
          f"{settings['retrieval']['prefetch_k']}, rrf_k {settings['retrieval']['rrf_k']}, bm25 weight "
          f"{settings['retrieval']['bm25_weight']}, maxsim retrieval_weight "
          f"{settings['rerank']['retrieval_weight']}, torch threads {settings['torch_threads']}")
    print(f"corpus: {corpus['files']} files, {corpus['chunks']} chunks (mean {corpus['chunk_chars_mean']:.0f} chars, "
          f"max {corpus['chunk_chars_max']}), ingested in {corpus['ingest_seconds']:.1f}s;  "
          f"QA: {outcome['questions']} questions from {', '.join(outcome['qa_files'])}")
    header = (f"{'config':<15} | {'docs@5: R@5':>11} {'MRR':>6} {'nDCG@5':>6} {'hit@5':>6} | "
              f"{'ctx@5: R@5':>10} {'MRR':>6} {'nDCG@5':>6} {'hit@5':>6} | {'ΔnDCG(docs)':>11} | "
              f"{'ms mean':>7} {'p95':>6} {'rerank':>6} {'cold':>6} {'x base':>6}")
    print(header)
    print("-" * len(header))
    for name, summary in summaries.items():
        docs, ctx = summary["docs@5"], summary["ctx@5"]
        print(f"{name:<15} | {docs['recall']:>11.3f} {docs['mrr']:>6.3f} {docs['ndcg']:>6.3f} {docs['hit']:>6.3f} | "
              f"{ctx['recall']:>10.3f} {ctx['mrr']:>6.3f} {ctx['ndcg']:>6.3f} {ctx['hit']:>6.3f} | "
              f"{docs['ndcg'] - base['docs@5']['ndcg']:>+11.3f} | {summary['latency_ms_mean']:>7.1f} "
              f"{summary['latency_ms_p95']:>6.1f} {summary['rerank_ms_mean']:>6.1f} {summary['rerank_ms_cold_mean']:>6.1f} "
              f"{summary['latency_ms_mean'] / base['latency_ms_mean']:>6.2f}")
    print(f"(baseline = {BASELINE}; R = share of gold sources found, hit = any gold source found; "
          f"latency = retrieve + rerank per question with the rerank's chunk cache on, as when serving;\n cold = mean rerank ms with the cache cleared, over the first --cold-sample questions)")
    default = summaries[DEFAULT_CONFIG]
    for view, attribute in (("docs@5", "docs"), ("ctx@5", "ctx")):
        recall = default[view]["recall"]
        verdict = "MEETS" if recall >= GOAL_RECALL else "MISSES"
        paired = paired_difference(getattr(results[DEFAULT_CONFIG], attribute)["ndcg"], getattr(results[BASELINE], attribute)["ndcg"])
        low, high = paired["ci95"]
        if low > 0:
            claim = "improves"
        elif high < 0:
            claim = "worsens"
        else:
            claim = "does not significantly change"
        print(f"{view}: {DEFAULT_CONFIG} recall@5 = {recall:.3f} -> {verdict} the goal of {GOAL_RECALL}; maxsim {claim} "
              f"nDCG@5 over hybrid alone ({base[view]['ndcg']:.3f} -> {default[view]['ndcg']:.3f}, {paired['mean']:+.3f}, "
              f"95% CI [{low:+.3f}, {high:+.3f}]; better on {paired['wins']} questions, worse on {paired['losses']}, "
              f"same on {paired['ties']})")


def paired_difference(treated: list[float], baseline: list[float], resamples: int = 10_000) -> dict:
    """Mean per-question difference with a paired bootstrap 95% interval (fixed seed, so reruns agree)."""
    differences = np.asarray(treated) - np.asarray(baseline)
    return {
        "mean": float(differences.mean()),
        "ci95": paired_bootstrap_ci(baseline, treated, seed=0, resamples=resamples),
        "wins": int((differences > 1e-12).sum()),
        "losses": int((differences < -1e-12).sum()),
        "ties": int((np.abs(differences) <= 1e-12).sum()),
    }


def print_failures(outcome: dict, limit: int) -> None:
    result: ConfigResult = outcome["results"][DEFAULT_CONFIG]
    misses = [(i, recall) for i, recall in enumerate(result.docs["recall"]) if recall < 1.0]
    print(f"\n{len(misses)} questions where {DEFAULT_CONFIG} misses a gold source in docs@5; first {limit}:")
    for index, recall in misses[:limit]:
        example = outcome["examples"][index]
        print(f"  [{example.id}] R={recall:.2f} {example.question}\n      gold: {example.sources}\n"
              f"      got : {result.rankings[index][:CUTOFF]}")


def output_name(args: argparse.Namespace) -> str:
    if args.name:
        return args.name
    parts = ["retrieval_quality"]
    for label, value, default in (("", args.chunking, None), ("size", args.size, None), ("overlap", args.overlap, None),
                                  ("prefetch", args.prefetch_k, None), ("depth", args.depth, 20), ("limit", args.limit, None),
                                  ("rrf", args.rrf_k, pipeline.store.base.RRF_K), ("rw", args.retrieval_weight, 0.0),
                                  ("bm25w", args.bm25_weight, 1.0)):
        if value is True:
            parts.append(label)
        elif value is not None and value != default:
            parts.append(f"{label}{value}")
    return "-".join(parts)


def main() -> None:
    args = parse_args()
    outcome = run(args)
    print_table(outcome)
    if args.failures:
        print_failures(outcome, args.failures)
    OUT_DIR.mkdir(exist_ok=True)
    path = OUT_DIR / f"{output_name(args)}.json"
    results = outcome.pop("results")
    examples = outcome.pop("examples")
    outcome["baseline"] = BASELINE
    outcome["goal"] = {"config": DEFAULT_CONFIG, "recall_at_5": GOAL_RECALL}
    outcome["configs"] = {name: result.summary() for name, result in results.items()}
    outcome["maxsim_vs_hybrid_ndcg5"] = {
        view: paired_difference(getattr(results[DEFAULT_CONFIG], view)["ndcg"], getattr(results[BASELINE], view)["ndcg"])
        for view in ("docs", "ctx")
    }
    outcome["per_question"] = [
        {"id": example.id, "gold": list(example.sources),
         **{name: result.rankings[i][:CUTOFF] for name, result in results.items()}}
        for i, example in enumerate(examples)
    ]
    path.write_text(json.dumps(outcome, indent=2), encoding="utf-8")
    print(f"\nwrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
