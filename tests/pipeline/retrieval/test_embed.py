"""The sentence-transformers embedder: which dtype it runs in, and that its vectors stay float32 unit vectors."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.retrieval.embed import SentenceTransformerEmbedder, embedder_dtype

INTEL_BF16 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n"
INTEL_AMX = "processor\t: 0\nflags\t\t: fpu avx512f amx_bf16 amx_tile amx_int8\n"
ARM_BF16 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
PLAIN_AVX512 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\n"
TEXTS = [
    "How do I rotate the API keys?",
    "Run corvidctl apikey rotate <key-id>; the old key stays valid for a 24-hour grace period.",
    "Streams are partitioned by key; each partition keeps its order.",
    "",
]


@pytest.mark.parametrize("cpuinfo", [INTEL_BF16, INTEL_AMX, ARM_BF16])
def test_auto_runs_bfloat16_on_cpus_with_native_bf16(cpuinfo):
    assert embedder_dtype("auto", cpuinfo=cpuinfo) == "bfloat16"


@pytest.mark.parametrize("cpuinfo", [PLAIN_AVX512, ""])
def test_auto_keeps_float32_where_bf16_would_be_emulated(cpuinfo):
    assert embedder_dtype("auto", cpuinfo=cpuinfo) == "float32"


@pytest.mark.parametrize("setting", ["float32", "bfloat16"])
def test_an_explicit_dtype_wins_over_the_cpu(setting):
    assert embedder_dtype(setting, cpuinfo=INTEL_BF16) == setting
    assert embedder_dtype(setting, cpuinfo=PLAIN_AVX512) == setting


def test_an_unknown_dtype_is_a_config_error_that_lists_the_choices():
    with pytest.raises(ConfigError, match="auto, bfloat16, float32"):
        SentenceTransformerEmbedder(dtype="float16")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def embedders() -> dict[str, SentenceTransformerEmbedder]:
    return {dtype: SentenceTransformerEmbedder(dtype=dtype) for dtype in ("float32", "bfloat16")}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_vectors_are_float32_unit_rows_in_either_dtype(embedders, dtype):
    embedder = embedders[dtype]
    vectors = embedder.encode(TEXTS)
    assert embedder.dtype == dtype
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(TEXTS), embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    tokens = embedder.encode_tokens(TEXTS[:2])
    assert all(t.dtype == np.float32 for t in tokens)
    np.testing.assert_allclose(np.linalg.norm(tokens[1], axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, embedder.dim)


@pytest.mark.slow
def test_bfloat16_vectors_agree_with_float32_to_three_nines(embedders):
    from pipeline.qa_set import DEMO_CORPUS

    texts = TEXTS + [path.read_text(encoding="utf-8")[:800] for path in sorted(DEMO_CORPUS.rglob("*.md"))[:12]]
    cosine = np.sum(embedders["bfloat16"].encode(texts) * embedders["float32"].encode(texts), axis=1)
    assert cosine.min() >= 0.999
