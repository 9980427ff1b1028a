"""The dtype a model runs in on this CPU: bfloat16 where the CPU computes it natively, float32 elsewhere.

Shared by the embedded LM and the embedder; reads /proc/cpuinfo once and imports nothing heavy.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal, get_args

from pipeline.errors import ConfigError

DtypeSetting = Literal["auto", "bfloat16", "float32"]
DTYPES: tuple[str, ...] = get_args(DtypeSetting)
CPUINFO = Path("/proc/cpuinfo")
# x86: AVX512-BF16 or AMX tiles; Arm: the BF16 extension (ARMv8.6). Without them bf16 matmuls are emulated and
# slower than float32.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def native_bf16(cpuinfo: str) -> bool:
    """Whether a /proc/cpuinfo text lists native bfloat16 in its flags (x86) or Features (Arm) lines."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features") and BF16_FLAGS & set(value.split()):
            return True
    return False


def has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU (or the CPU a given /proc/cpuinfo text describes) computes bfloat16 natively."""
    return native_bf16(cpuinfo) if cpuinfo is not None else _this_cpu_has_bf16()


@functools.lru_cache(maxsize=1)
def _this_cpu_has_bf16() -> bool:
    try:
        return native_bf16(CPUINFO.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return False  # no /proc/cpuinfo (macOS, Windows): float32 is the safe choice there


def resolve_dtype(
    setting: str = "auto", *, bf16_ok: bool = True, cpuinfo: str | None = None, what: str = "embedded LM"
) -> str:
    """The torch dtype name to run in: the setting when explicit; for `auto`, bfloat16 where the CPU (this one, or
    the given cpuinfo text) has native bf16 and the model's answers hold in it (`bf16_ok`), float32 elsewhere."""
    if setting not in DTYPES:
        raise ConfigError(f"Unknown {what} dtype {setting!r}; use one of: {', '.join(DTYPES)}.")
    if setting != "auto":
        return setting
    return "bfloat16" if bf16_ok and has_native_bf16(cpuinfo) else "float32"
