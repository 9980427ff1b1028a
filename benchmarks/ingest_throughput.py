"""Ingest throughput: the full pipeline (parse, chunk, embed, BM25, write to the embedded store) against bare embedding.

The baseline is `SentenceTransformer.encode` on exactly the chunk texts the pipeline indexed, with the same
model object and batch size, measured in the same process before and after the pipeline run (to bracket
machine noise). The ratio pipeline/bare says how much of the embedder's speed the pipeline keeps; goal ≥ 0.8.

`--large-file MB` ingests one generated text file of that size instead (the demo corpus's text, varied copy by
copy), the case where a progress bar used to sit at 0/1. `--write-path` swaps the model for random vectors,
so the pipeline run times parsing, chunking, BM25 and writing alone; bare encode then runs on the first
`--sample` chunks only, and the ratio write-path/bare says how many times faster than embedding the rest of the
pipeline is (it must be far above 1 for embedding to stay the bottleneck).

    .venv/bin/python benchmarks/ingest_throughput.py                           # 9 copies of the demo corpus
    .venv/bin/python benchmarks/ingest_throughput.py --copies 2                # a quick run
    .venv/bin/python benchmarks/ingest_throughput.py --large-file 0.5          # one file, embedding-bound ratio
    .venv/bin/python benchmarks/ingest_throughput.py --large-file 60 --write-path  # one 60 MB file, no model
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline.cli import entry_point
from pipeline.config import ChunkingSettings
from pipeline.ingest.chunking import Chunker, make_chunker
from pipeline.ingest.files import list_files
from pipeline.ingest.parse import parse_file
from pipeline.ingest.report import IngestProgress
from pipeline.ingest.sync import Ingestor
from pipeline.qa_set import DEMO_CORPUS
from pipeline.retrieval.embed import DEFAULT_EMBEDDER, load_embedder
from pipeline.store.bm25 import Bm25Encoder
from pipeline.store.edge import EdgeStore

OUT_DIR = Path(__file__).resolve().parent.parent / ".benchmarks_out"
COLLECTION = "bench"
GOAL_RATIO = 0.8
_DIGIT = re.compile(r"\d")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=9, help="copies of the demo corpus to ingest (9 ≈ 5,500 chunks)")
    parser.add_argument("--batch-size", type=int, default=64, help="embedding batch size, pipeline and bare alike")
    parser.add_argument(
        "--write-batch", type=int, help="chunks the Ingestor queues per write (default: the Ingestor's own default)"
    )
    parser.add_argument("--corpus", type=Path, default=DEMO_CORPUS, help="folder of .md files to replicate")
    parser.add_argument("--large-file", type=float, metavar="MB", help="ingest one generated text file of MB megabytes")
    parser.add_argument(
        "--write-path", action="store_true", help="pipeline with random vectors for a model: parse, chunk, BM25 and write alone"
    )
    parser.add_argument("--sample", type=int, default=512, help="chunks bare encode times in --write-path mode")
    return parser.parse_args()


def vary(text: str, copy: int) -> str:
    """Make copy `copy` of a document differ from the others: the product name carries the copy number and
    every digit is shifted by it, so nearly every chunk text is distinct while its length barely changes."""
    if copy == 0:
        return text
    text = text.replace("Corvid", f"Corvid{copy}")
    return _DIGIT.sub(lambda match: str((int(match.group()) + copy) % 10), text)


def build_corpus(source: Path, target: Path, copies: int) -> int:
    files = sorted(source.rglob("*.md"))
    if not files:
        raise SystemExit(f"No .md files under {source}; pass --corpus with a folder of Markdown files.")
    for copy in range(copies):
        for path in files:
            out = target / f"copy-{copy:03d}" / path.relative_to(source)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(vary(path.read_text(encoding="utf-8"), copy), encoding="utf-8")
    return len(files) * copies


def build_large_file(source: Path, target: Path, megabytes: float) -> int:
    """One .txt file of about `megabytes` MB: the corpus's documents, copy after varied copy. Returns 1 (files)."""
    files = sorted(source.rglob("*.md"))
    if not files:
        raise SystemExit(f"No .md files under {source}; pass --corpus with a folder of Markdown files.")
    texts = [path.read_text(encoding="utf-8") for path in files]
    target.mkdir(parents=True)
    limit = int(megabytes * 1_000_000)
    written = 0
    with (target / "large.txt").open("w", encoding="utf-8") as out:
        copy = 0
        while written < limit:
            for text in texts:
                written += out.write(vary(text, copy) + "\n\n")
            copy += 1
    return 1


class RandomEmbedder:
    """Random unit vectors: nothing next to a model's cost, yet distinct vectors for the index to be built on."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.rng = np.random.default_rng(0)

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.rng.standard_normal((len(texts), self.dim), dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def chunk_texts(folder: Path, chunker: Chunker) -> list[str]:
    """The chunk texts the Ingestor will embed, in its order (same files, parser, chunker and blank filter)."""
    root = folder.resolve()
    texts = []
    for path in list_files(root)[0]:
        source = path.relative_to(root).as_posix()
        for section in parse_file(path):
            texts.extend(chunk.text for chunk in chunker.split(section, source) if chunk.text.strip())
    return texts


def time_bare(model, texts: list[str], batch_size: int) -> float:
    started = time.perf_counter()
    model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    return time.perf_counter() - started


@entry_point
def main() -> int:
    args = parse_args()
    if args.copies < 1:
        raise SystemExit("--copies must be at least 1.")
    if args.large_file is not None and args.large_file <= 0:
        raise SystemExit("--large-file must be a positive number of megabytes.")
    chunking = ChunkingSettings()
    embedder = load_embedder(DEFAULT_EMBEDDER)
    embedder.batch_size = args.batch_size
    model = embedder.model
    chunker = make_chunker(chunking.strategy, size=chunking.size, overlap=chunking.overlap)

    work = Path(tempfile.mkdtemp(prefix="tessera-bench-ingest-"))
    try:
        docs = work / "docs"
        if args.large_file is not None:
            n_files = build_large_file(args.corpus, docs, args.large_file)
            described = f"one {args.large_file:g} MB text file made of {args.corpus.name}/"
        else:
            n_files = build_corpus(args.corpus, docs, args.copies)
            described = f"{args.copies} copies of {args.corpus.name}/ = {n_files} files"
        started = time.perf_counter()
        texts = chunk_texts(docs, chunker)
        chunk_seconds = time.perf_counter() - started
        distinct = len(set(texts))
        bare_texts = texts[: args.sample] if args.write_path else texts
        print(
            f"corpus: {described}, {len(texts)} chunks in {chunk_seconds:.1f}s of parsing and chunking "
            f"({distinct} distinct texts); chunker {chunking.strategy} size={chunking.size} overlap={chunking.overlap}; "
            f"batch size {args.batch_size}; torch threads {torch.get_num_threads()}"
        )

        # Warm up: first calls pay for lazy initialisation and allocator growth.
        model.encode(texts[: 4 * args.batch_size], batch_size=args.batch_size, normalize_embeddings=True)
        Bm25Encoder().encode_documents(texts[:256])

        print(f"bare encode of {len(bare_texts)} chunks (before) ...", flush=True)
        bare_before = time_bare(model, bare_texts, args.batch_size)

        store = EdgeStore(work / "store")
        pipeline_embedder = RandomEmbedder(embedder.dim) if args.write_path else embedder
        ingestor = Ingestor(store, COLLECTION, pipeline_embedder, chunker, Bm25Encoder())
        if args.write_batch is not None:
            ingestor.batch_size = args.write_batch
        print(f"pipeline: Ingestor write batch {ingestor.batch_size} chunks, embedding batch {embedder.batch_size}")
        with tqdm(total=0, unit="B", unit_scale=True, desc="pipeline ingest") as bar:

            def progress(event: IngestProgress) -> None:
                bar.total = event.bytes_total
                bar.update(event.bytes_done - bar.n)

            started = time.perf_counter()
            try:
                report = ingestor.sync(docs, progress=progress)
                synced = time.perf_counter()
            finally:
                store.close()  # builds the HNSW index where needed and flushes: part of an ingest run
            pipeline_seconds = time.perf_counter() - started
        close_seconds = pipeline_seconds - (synced - started)
        if report.failed:
            raise SystemExit(f"ingest failed for {len(report.failed)} files, e.g. {report.failed[0]}")

        with EdgeStore(work / "store") as reopened:
            stored = [payload["text"] for _, payload in reopened.scan(COLLECTION, ["text"])]
        if Counter(stored) != Counter(texts):
            raise SystemExit(
                f"the store holds {len(stored)} chunks that differ from the {len(texts)} the chunker produced; "
                "the bare baseline would not embed the same texts"
            )

        print(f"bare encode of {len(bare_texts)} chunks (after) ...", flush=True)
        bare_after = time_bare(model, bare_texts, args.batch_size)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n, n_bare = len(texts), len(bare_texts)
    pipeline_name = "write path (no model)" if args.write_path else "pipeline ingest"
    rows = [
        ("bare encode (before)", n_bare, bare_before),
        (pipeline_name, n, pipeline_seconds),
        ("bare encode (after)", n_bare, bare_after),
    ]
    print(f"\n{'run':<24}{'chunks':>8}{'seconds':>10}{'chunks/s':>10}")
    for name, count, seconds in rows:
        print(f"{name:<24}{count:>8}{seconds:>10.2f}{count / seconds:>10.1f}")
    print(f"pipeline split: sync {pipeline_seconds - close_seconds:.2f}s + store close (index, flush) {close_seconds:.2f}s")
    # Throughputs, not times: in --write-path mode the bare runs embed a sample, not every chunk.
    bare_rate = n_bare / statistics.mean([bare_before, bare_after])
    pipeline_rate = n / pipeline_seconds
    ratio = pipeline_rate / bare_rate
    ratio_before, ratio_after = pipeline_rate / (n_bare / bare_before), pipeline_rate / (n_bare / bare_after)
    if args.write_path:
        print(
            f"ratio write path/bare throughput: {ratio:.1f} (the pipeline without its model is {ratio:.1f}x as fast "
            f"as embedding alone; {ratio_before:.1f} against before, {ratio_after:.1f} against after)"
        )
    else:
        verdict = "meets" if ratio >= GOAL_RATIO else "MISSES"
        print(
            f"ratio pipeline/bare throughput: {ratio:.3f} against the mean bare run "
            f"({ratio_before:.3f} against before, {ratio_after:.3f} against after); {verdict} the goal ≥ {GOAL_RATIO}"
        )

    OUT_DIR.mkdir(exist_ok=True)
    result = {
        "benchmark": "ingest_throughput",
        "mode": "write_path" if args.write_path else "pipeline",
        "copies": None if args.large_file is not None else args.copies,
        "large_file_mb": args.large_file,
        "bare_chunks": n_bare,
        "chunking_s": chunk_seconds,
        "files": n_files,
        "chunks": n,
        "distinct_chunk_texts": distinct,
        "batch_size": args.batch_size,
        "write_batch": ingestor.batch_size,
        "chunking": chunking.model_dump(),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "bare_before_s": bare_before,
        "bare_after_s": bare_after,
        "pipeline_s": pipeline_seconds,
        "pipeline_sync_s": pipeline_seconds - close_seconds,
        "pipeline_close_s": close_seconds,
        "bare_chunks_per_s": bare_rate,
        "pipeline_chunks_per_s": pipeline_rate,
        "ratio": ratio,
        "ratio_vs_before": ratio_before,
        "ratio_vs_after": ratio_after,
        "goal_ratio": None if args.write_path else GOAL_RATIO,
        "meets_goal": None if args.write_path else ratio >= GOAL_RATIO,
    }
    name = "ingest_throughput"
    if args.large_file is not None:
        name += "_large"
    if args.write_path:
        name += "_write_path"
    (OUT_DIR / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT_DIR / f'{name}.json'}")
    return 0


if __name__ == "__main__":
    main()
