"""The `serving:` settings section: where `scripts/serve.py` listens, its keys and limits, what it logs."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from guardrails.settings import SettingsSection

DEFAULT_KEYS_FILE = ".tessera/api_keys.json"
DEFAULT_USAGE_LOG = ".tessera/usage.jsonl"


class ServingSettings(SettingsSection):
    """How the HTTP front doors serve a registered model.

    API keys are required as soon as `api_keys_file` holds one (`scripts/serve.py --add-key NAME` writes it); with
    no keys anyone who can reach the port may call the model. `rate_limit_rpm` is each key's requests per minute
    (a key may carry its own), shared by all workers; None means no limit. Prices are US dollars per 1,000 LM
    tokens for the usage log's estimated cost; None takes LiteLLM's price for the model's LM (0 for embedded LMs).
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    # Requests one worker runs at once (each in its own thread); more wait their turn.
    concurrency: int = Field(default=8, ge=1, le=256)
    api_keys_file: Path = Path(DEFAULT_KEYS_FILE)
    rate_limit_rpm: int | None = Field(default=None, ge=1, le=1_000_000)
    usage_log: Path | None = Path(DEFAULT_USAGE_LOG)
    # Served requests are traced to MLflow (MLFLOW_TRACKING_URI) unless this is false.
    tracing: bool = True
    max_body_bytes: int = Field(default=1_000_000, ge=1_000, le=100_000_000)
    request_timeout_s: float = Field(default=120.0, gt=0, le=3600)
    prompt_price_per_1k: float | None = Field(default=None, ge=0)
    completion_price_per_1k: float | None = Field(default=None, ge=0)
