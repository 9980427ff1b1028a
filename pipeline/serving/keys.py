"""What a gateway adds in front of the served model: API keys kept only as salted hashes, a per-key
requests-per-minute limit that all serving workers share, and a usage line (tokens, estimated cost) per request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError

logger = logging.getLogger(__name__)

KEY_PREFIX = "tsk-"
ANONYMOUS = "anonymous"  # the key id of requests to a server that has no keys
_KEY_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
# A server re-reads its keys file at most this often, so a revoked key stops working without a restart.
RELOAD_EVERY_S = 1.0


@dataclass(frozen=True)
class StoredKey:
    """One API key as the keys file holds it: its name and a salted sha256 of the key, never the key."""

    id: str
    salt: str
    sha256: str
    created: str
    rate_limit_rpm: int | None = None

    def matches(self, presented: str) -> bool:
        return hmac.compare_digest(_digest(self.salt, presented), self.sha256)


def _digest(salt: str, key: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + key.encode("utf-8", errors="surrogatepass")).hexdigest()


def read_keys(path: Path) -> list[StoredKey]:
    """The keys in `path`; none when the file does not exist. A file that is not a keys file is a ConfigError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"API keys file {path} cannot be read ({exc}). Fix or delete it, then add keys with "
                          "`scripts/serve.py --add-key NAME`.") from exc
    try:
        return [StoredKey(**entry) for entry in data["keys"]]
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"API keys file {path} is not a Tessera keys file ({exc!r} in it); it holds "
                          '{"keys": [{"id", "salt", "sha256", "created", "rate_limit_rpm"}]}, written by '
                          "`scripts/serve.py --add-key NAME`.") from exc


def _write_keys(path: Path, keys: Iterable[StoredKey]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(path.name + f".{os.getpid()}.tmp")
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump({"keys": [asdict(key) for key in keys]}, handle, indent=2)
    os.replace(scratch, path)


def add_key(path: Path, name: str, rate_limit_rpm: int | None = None) -> str:
    """Create API key `name` in `path` and return the key; only its salted hash is stored, so this is the one
    time anyone sees it."""
    if not _KEY_NAME.fullmatch(name):
        raise ConfigError(f"API key name {name!r}: use 1-64 letters, digits, '.', '_' or '-' (it appears in logs).")
    if rate_limit_rpm is not None and rate_limit_rpm < 1:
        raise ConfigError(f"--rpm {rate_limit_rpm}: a key's limit is at least 1 request per minute.")
    keys = read_keys(path)
    if any(key.id == name for key in keys):
        raise ConfigError(f"{path} already has a key named {name!r}; revoke it first (--revoke-key {name}) or pick another name.")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    _write_keys(path, [*keys, StoredKey(name, salt, _digest(salt, key), created, rate_limit_rpm)])
    return key


def revoke_key(path: Path, name: str) -> None:
    """Remove key `name` from `path`; running servers stop accepting it within a second."""
    keys = read_keys(path)
    if not any(key.id == name for key in keys):
        raise ConfigError(f"{path} has no key named {name!r}; it has: {', '.join(k.id for k in keys) or 'none'}.")
    _write_keys(path, [key for key in keys if key.id != name])


class KeyRing:
    """The keys a server accepts, re-read from their file when it changes. While the file has never held a key,
    every caller is anonymous."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._keys: list[StoredKey] = []
        self._locked = False
        self._reload(force=True)

    @property
    def required(self) -> bool:
        """Whether callers need a key: once the file has held one, always (revoking the last key locks the door)."""
        self._reload()
        return self._locked

    def identify(self, presented: str | None) -> StoredKey | None:
        """The stored key `presented` is, or None when it is none of them."""
        self._reload()
        if not presented:
            return None
        found = None
        for key in self._keys:  # every key is compared, so the time taken does not say which one matched
            if key.matches(presented):
                found = key
        return found

    def _reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < RELOAD_EVERY_S:
            return
        with self._lock:
            self._checked = now
            try:
                status = self.path.stat()
                stamp = (status.st_mtime_ns, status.st_size)
            except FileNotFoundError:
                stamp = None
            if stamp == self._stamp and not force:
                return
            try:
                self._keys = read_keys(self.path)
            except ConfigError:
                if force:
                    raise
                # A half-edited file must not open the door: keep the keys read last.
                logger.exception("keeping the previous API keys: %s cannot be read", self.path)
                return
            self._stamp = stamp
            self._locked = self._locked or bool(self._keys)


class RateLimiter:
    """Per-key requests per minute, shared by every worker through one SQLite file (GCRA: one timestamp per key).

    A key may spend its whole minute at once; after that it gets one request every 60/rpm seconds.
    """

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path) if path else ":memory:", timeout=10.0, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 10000")
        if path:
            self._db.execute("PRAGMA journal_mode = WAL")
        # Losing the last few stamps in a crash only forgives a few requests.
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute("CREATE TABLE IF NOT EXISTS limits (key TEXT PRIMARY KEY, tat REAL NOT NULL)")

    def admit(self, key_id: str, rpm: int | None, now: float | None = None) -> float | None:
        """None when `key_id` may make a request now (and counts it), else the seconds until it may."""
        if rpm is None:
            return None
        now = time.time() if now is None else now
        interval, window = 60.0 / rpm, 60.0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT tat FROM limits WHERE key = ?", (key_id,)).fetchone()
                tat = max(row[0], now) if row else now
                wait = tat - now - (window - interval)
                if wait > 0:
                    return wait
                self._db.execute("INSERT OR REPLACE INTO limits (key, tat) VALUES (?, ?)", (key_id, tat + interval))
                return None
            finally:
                self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


@dataclass(frozen=True)
class Prices:
    """US dollars per 1,000 prompt and completion tokens; None when nobody knows the price."""

    prompt_per_1k: float | None
    completion_per_1k: float | None

    def cost(self, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        if prompt_tokens is None or completion_tokens is None or self.prompt_per_1k is None or self.completion_per_1k is None:
            return None
        return round((prompt_tokens * self.prompt_per_1k + completion_tokens * self.completion_per_1k) / 1000, 8)


def lm_prices(lm: str | None, prompt_per_1k: float | None = None, completion_per_1k: float | None = None) -> Prices:
    """The prices settings give, else LiteLLM's price table for LM string `lm` (0 for the embedded LMs)."""
    if prompt_per_1k is not None and completion_per_1k is not None:
        return Prices(prompt_per_1k, completion_per_1k)
    listed: tuple[float | None, float | None] = (None, None)
    if lm is not None and lm.startswith("local/"):
        listed = (0.0, 0.0)
    elif lm is not None:
        try:
            import litellm

            prompt, completion = litellm.cost_per_token(model=lm, prompt_tokens=1000, completion_tokens=1000)
            listed = (prompt, completion)
        except Exception:  # noqa: BLE001 - LiteLLM raises a bare Exception for a model it has no price for
            logger.info("LiteLLM has no price for %s; the usage log leaves cost empty unless serving prices are set", lm)
    return Prices(prompt_per_1k if prompt_per_1k is not None else listed[0],
                  completion_per_1k if completion_per_1k is not None else listed[1])


class UsageLog:
    """One JSON line per request (key id, tokens, estimated cost, status, latency), appended by every worker, and
    the same at INFO on this module's logger."""

    def __init__(self, path: Path | None, prices: Prices) -> None:
        self.path = Path(path) if path else None
        self.prices = prices
        self._lock = threading.Lock()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, *, prompt_tokens: int | None, completion_tokens: int | None, **fields: Any) -> dict[str, Any]:
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            **fields,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "cost_usd": self.prices.cost(prompt_tokens, completion_tokens),
        }
        text = json.dumps(line, ensure_ascii=False, default=str)
        logger.info("usage %s", text)
        if self.path is not None:
            # One write of one line to a file opened for appending: lines from several workers do not interleave.
            with self._lock, open(self.path, "a", encoding="utf-8") as handle:
                handle.write(text + "\n")
        return line


def usage_totals(path: Path) -> dict[str, dict[str, float]]:
    """Requests, tokens and estimated cost per key id, summed over a usage log."""
    totals: dict[str, dict[str, float]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise ConfigError(f"No usage log at {path}: the server writes it (serving.usage_log) once it has served a request.") from exc
    for number, text in enumerate(lines, start=1):
        try:
            line = json.loads(text)
        except ValueError:
            logger.warning("%s line %d is not JSON; skipped", path, number)
            continue
        entry = totals.setdefault(str(line.get("api_key_id")), {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0})
        entry["requests"] += 1
        for field in ("prompt_tokens", "completion_tokens", "cost_usd"):
            entry[field] += line.get(field) or 0
    return totals
