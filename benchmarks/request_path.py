"""The non-LM request path (input guard + retrieve + context guard), before vs after storing context-guard verdicts
at ingest and embedding each question once, on the demo corpus with the real MiniLM embedder.

"Before" runs the context chain live on every retrieved passage and lets the input guard and the retriever embed
the question separately; "after" looks the stored verdicts up (only PII redaction runs) inside one per-request
embedding memo. Both run in the same process over the same index, alternating question by question.
With --fpr it also reports how many ordinary documentation chunks of each corpus the context guard drops.

    .venv/bin/python benchmarks/request_path.py [--questions 30] [--fpr]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from guardrails.policy import build_guards  # noqa: E402
from pipeline.config import ChunkingSettings  # noqa: E402
from guardrails.settings import GuardSettings  # noqa: E402
from pipeline.ingest.chunking import make_chunker  # noqa: E402
from pipeline.ingest.sync import Ingestor  # noqa: E402
from pipeline.retrieval.embed import load_embedder  # noqa: E402
from pipeline.retrieval.guarded import GuardedRetrieval  # noqa: E402
from pipeline.retrieval.memo import RequestMemoEmbedder, one_embedding_per_text  # noqa: E402
from pipeline.retrieval.retriever import HybridRetriever  # noqa: E402
from pipeline.retrieval.verdicts import VERDICT_FIELD, ContextVerdicts  # noqa: E402
from pipeline.store.factory import open_store  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CORPORA = {"corpus": ROOT / "eval_sets" / "corpus", "thirdparty": ROOT / "eval_sets" / "thirdparty"}
QA = ROOT / "eval_sets" / "qa.jsonl"
CHUNKING = ChunkingSettings()  # the defaults a user gets


class CountingEmbedder:
    """Counts encode calls that reach MiniLM."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.name = inner.name
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        return self.inner.encode(texts)


def ingest(store, name: str, folder: Path, embedder, verdicts: ContextVerdicts) -> tuple[int, float]:
    started = time.perf_counter()
    report = Ingestor(store, name, embedder, make_chunker("structure", size=CHUNKING.size, overlap=CHUNKING.overlap), verdicts=verdicts).sync(folder)
    return report.chunks_written, time.perf_counter() - started


def one_request(input_guard, retrieval, question: str, memo: bool) -> dict[str, float]:
    started = time.perf_counter()
    if memo:
        with one_embedding_per_text():
            input_guard.run(question)
            guarded_at = time.perf_counter()
            retrieved = retrieval(question)
    else:
        input_guard.run(question)
        guarded_at = time.perf_counter()
        retrieved = retrieval(question)
    return {"input_guard": guarded_at - started, "retrieve": retrieved.timings["retrieve"],
            "context_guard": retrieved.timings["context_guard"], "non_lm": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--fpr", action="store_true", help="also the context guard's drop rate on both corpora")
    args = parser.parse_args()
    questions = [json.loads(line)["question"] for line in QA.read_text(encoding="utf-8").splitlines() if line.strip()]
    questions = questions[: args.questions]
    minilm = load_embedder()
    plain = CountingEmbedder(minilm)
    memo = RequestMemoEmbedder(CountingEmbedder(minilm))
    before_guards = build_guards(GuardSettings(), plain)
    after_guards = build_guards(GuardSettings(), memo)
    verdicts = ContextVerdicts(after_guards.context)
    if verdicts.fingerprint != ContextVerdicts(before_guards.context).fingerprint:
        raise SystemExit("the memo embedder changed the context guard fingerprint")

    with tempfile.TemporaryDirectory() as folder, open_store(path=Path(folder) / "store") as store:
        chunks, seconds = ingest(store, "corpus", CORPORA["corpus"], minilm, verdicts)
        print(f"demo corpus: {chunks} chunks ingested with verdicts in {seconds:.1f}s "
              f"({1000 * seconds / max(chunks, 1):.0f} ms/chunk); context guard {verdicts.fingerprint}")
        before = GuardedRetrieval(HybridRetriever(store, "corpus", plain), context_guard=before_guards.context)
        before.lookup = None  # the stored verdicts ignored: the context chain runs live, as before this change
        after = GuardedRetrieval(HybridRetriever(store, "corpus", memo), context_guard=after_guards.context)
        for retrieval, guards, memoised in ((before, before_guards, False), (after, after_guards, True)):
            one_request(guards.input, retrieval, "warm up: how do I rotate keys?", memoised)
        rows = {"before": [], "after": []}
        calls = {"before": 0, "after": 0}
        for question in questions:
            for label, retrieval, guards, memoised, counter in (
                ("before", before, before_guards, False, plain),
                ("after", after, after_guards, True, memo.embedder),
            ):
                start_calls = counter.calls
                rows[label].append(one_request(guards.input, retrieval, question, memoised))
                calls[label] += counter.calls - start_calls

        print(f"\n{len(questions)} questions from eval_sets/qa.jsonl, ms per question (median / mean)")
        print(f"{'stage':>14} {'before':>17} {'after':>17} {'ratio (mean)':>13}")
        for stage in ("input_guard", "retrieve", "context_guard", "non_lm"):
            b = [1000 * row[stage] for row in rows["before"]]
            a = [1000 * row[stage] for row in rows["after"]]
            print(f"{stage:>14} {statistics.median(b):8.2f} /{statistics.mean(b):7.2f} "
                  f"{statistics.median(a):8.2f} /{statistics.mean(a):7.2f} {statistics.mean(b) / statistics.mean(a):12.1f}x")
        print(f"MiniLM encode calls per question: before {calls['before'] / len(questions):.1f}, "
              f"after {calls['after'] / len(questions):.1f}")

        if args.fpr:
            print("\ncontext guard drops on ordinary documentation (stored verdicts, every chunk)")
            ingest(store, "thirdparty", CORPORA["thirdparty"], minilm, verdicts)
            for name in CORPORA:
                stored = [(p.get("source"), p.get(VERDICT_FIELD)) for _, p in store.scan(name, ["source", VERDICT_FIELD])]
                dropped = sorted(source for source, v in stored if v and not all(r["allowed"] for r in v["results"]))
                missing = sum(v is None for _, v in stored)
                print(f"{name:>11}: {len(dropped)} of {len(stored)} chunks dropped ({100 * len(dropped) / len(stored):.2f}%),"
                      f" {missing} unchecked; files: {', '.join(sorted(set(dropped))[:8])}")


if __name__ == "__main__":
    main()
