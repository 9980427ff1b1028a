"""Embedding speed: bare float32 `SentenceTransformer.encode` against bfloat16 candidates, on the demo corpus's chunks.

The texts are eval_sets/corpus parsed and chunked as ingest does (default chunking settings). One process loads
the bundled MiniLM once per variant and times the variants in alternation (A B C A B C ...), so machine noise
hits them alike; the table shows each variant's median chunks/s and its ratio to float32 (goal >= 1.5x), the
mean and minimum cosine between its vector and the float32 vector of the same text (goal >= 0.999), and on the
277 QA questions the fraction of questions whose dense top-5 chunks are the same set and recall@5 of source documents.

    bf16-cast      the model's weights cast to bfloat16 (what SentenceTransformerEmbedder(dtype="bfloat16") runs)
    bf16-autocast  float32 weights under torch.autocast("cpu", dtype=torch.bfloat16)

    .venv/bin/python benchmarks/embedding_speed.py                 # 5 alternating rounds
    .venv/bin/python benchmarks/embedding_speed.py --rounds 3 --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

from pipeline.config import ChunkingSettings  # noqa: E402
from pipeline.ingest.chunking import make_chunker  # noqa: E402
from pipeline.ingest.files import list_files  # noqa: E402
from pipeline.ingest.parse import parse_file  # noqa: E402
from pipeline.qa_set import DEMO_CORPUS, load_qa  # noqa: E402
from pipeline.cpu import native_bf16  # noqa: E402
from pipeline.retrieval.embed import SentenceTransformerEmbedder, bundled_minilm_path  # noqa: E402

GOAL_RATIO = 1.5
GOAL_COSINE = 0.999
TOP_K = 5

Encode = Callable[[list[str]], np.ndarray]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; medians are over these")
    parser.add_argument("--batch-size", type=int, default=64, help="embedding batch size, every variant alike")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    return parser.parse_args()


def chunk_texts(folder: Path) -> tuple[list[str], list[str]]:
    """The chunk texts ingest embeds (same files, parser, default chunker, blank filter) and each one's source."""
    chunking = ChunkingSettings()
    chunker = make_chunker(chunking.strategy, size=chunking.size, overlap=chunking.overlap)
    root = folder.resolve()
    texts, sources = [], []
    for path in list_files(root)[0]:
        source = path.relative_to(root).as_posix()
        for section in parse_file(path):
            for chunk in chunker.split(section, source):
                if chunk.text.strip():
                    texts.append(chunk.text)
                    sources.append(source)
    return texts, sources


def bare_encoder(batch_size: int) -> Encode:
    """The baseline: SentenceTransformer in float32, exactly as the library hands it out."""
    model = SentenceTransformer(str(bundled_minilm_path()), device="cpu")

    def encode(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)

    return encode


def autocast_encoder(batch_size: int) -> Encode:
    model = SentenceTransformer(str(bundled_minilm_path()), device="cpu")

    def encode(texts: list[str]) -> np.ndarray:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            vectors = model.encode(texts, batch_size=batch_size, convert_to_tensor=True)
        vectors = torch.nn.functional.normalize(vectors.float(), dim=1)
        return vectors.numpy()

    return encode


def cast_encoder(batch_size: int) -> Encode:
    return SentenceTransformerEmbedder(batch_size=batch_size, dtype="bfloat16").encode


def top_k(questions: np.ndarray, chunks: np.ndarray) -> np.ndarray:
    return np.argsort(-(questions @ chunks.T), axis=1, kind="stable")[:, :TOP_K]


def recall(top: np.ndarray, sources: list[str], gold: list[set[str]]) -> float:
    """Mean fraction of each question's gold documents found among the sources of its top-k chunks."""
    scores = [len(want & {sources[i] for i in row}) / len(want) for row, want in zip(top, gold, strict=True) if want]
    return statistics.fmean(scores)


def main() -> int:
    args = parse_args()
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1.")
    if args.threads:
        torch.set_num_threads(args.threads)
    texts, sources = chunk_texts(DEMO_CORPUS)
    qa = load_qa()
    questions = [example.question for example in qa]
    gold = [set(example.sources) for example in qa]
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8") if Path("/proc/cpuinfo").exists() else ""
    flags = sorted({flag for flag in cpuinfo.split() if flag in ("avx512_bf16", "amx_bf16", "amx_tile")})
    print(
        f"{len(texts)} chunks of {DEMO_CORPUS.name}/, {len(questions)} questions; batch {args.batch_size}; "
        f"torch {torch.__version__} threads {torch.get_num_threads()}; cpu capability "
        f"{torch.backends.cpu.get_cpu_capability()}; mkldnn {torch.backends.mkldnn.is_available()}; "
        f"bf16 flags {flags or 'none'} (native bf16: {native_bf16(cpuinfo)})",
        flush=True,
    )

    variants = {
        "fp32 (bare)": bare_encoder(args.batch_size),
        "bf16-cast": cast_encoder(args.batch_size),
        "bf16-autocast": autocast_encoder(args.batch_size),
    }
    vectors: dict[str, np.ndarray] = {}
    for name, encode in variants.items():  # warm-up, and the vectors the quality columns compare
        vectors[name] = encode(texts)
        vectors[name + "/q"] = encode(questions)

    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for round_no in range(args.rounds):
        for name, encode in variants.items():
            started = time.perf_counter()
            encode(texts)
            seconds[name].append(time.perf_counter() - started)
        print(f"round {round_no + 1}: " + ", ".join(f"{n} {s[-1]:.2f}s" for n, s in seconds.items()), flush=True)

    base = "fp32 (bare)"
    base_rate = len(texts) / statistics.median(seconds[base])
    base_top = top_k(vectors[base + "/q"], vectors[base])
    print()
    print(f"| variant | chunks/s (median of {args.rounds}) | ratio vs fp32 | cosine mean | cosine min | "
          f"same top-{TOP_K} set | recall@{TOP_K} |")
    print("|---|---|---|---|---|---|---|")
    for name in variants:
        rate = len(texts) / statistics.median(seconds[name])
        cosine = np.sum(vectors[name] * vectors[base], axis=1)
        q_cosine = np.sum(vectors[name + "/q"] * vectors[base + "/q"], axis=1)
        top = top_k(vectors[name + "/q"], vectors[name])
        same = float(np.mean([set(a) == set(b) for a, b in zip(top, base_top, strict=True)]))
        print(
            f"| {name} | {rate:.0f} | {rate / base_rate:.2f}x | {cosine.mean():.5f} | "
            f"{min(cosine.min(), q_cosine.min()):.5f} | {same:.3f} | {recall(top, sources, gold):.3f} |"
        )
    print(f"\ngoal: ratio >= {GOAL_RATIO}x, cosine min >= {GOAL_COSINE}, recall@{TOP_K} no lower than fp32")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
