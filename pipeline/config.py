"""Tessera's one settings object: `tessera.yaml` plus `TESSERA_*` environment overrides, validated on load."""

from __future__ import annotations

import json
import os
import types
from collections.abc import Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from guardrails.settings import GuardSettings, SettingsSection
from pipeline.cpu import DtypeSetting
from pipeline.errors import ConfigError
from pipeline.lm.factory import lm_provider
from pipeline.lm.models import default_embedded_lm
from pipeline.retrieval.embed import DEFAULT_EMBEDDER, EmbedderDtype
from pipeline.serving.settings import ServingSettings
from pipeline.tools.settings import ToolSettings

DEFAULT_CONFIG_FILE = "tessera.yaml"
DEFAULT_STORE_PATH = ".tessera/store"


class StoreSettings(SettingsSection):
    """Where the index lives: a local folder (embedded Qdrant Edge) or a Qdrant server (`url`)."""

    path: Path | None = None
    url: str | None = None
    api_key: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not a Qdrant server URL; write it with its scheme, e.g. 'http://{value}'")
        return value

    @model_validator(mode="after")
    def one_location(self) -> "StoreSettings":
        if self.path is not None and self.url is not None:
            raise ValueError("set only one of store.path (embedded) and store.url (Qdrant server)")
        if self.path is None and self.url is None:
            self.path = Path(DEFAULT_STORE_PATH)
        return self


class ChunkingSettings(SettingsSection):
    """How documents are cut: strategy, size (characters, or tokens for `tokens`) and overlap."""

    strategy: Literal["structure", "recursive", "tokens", "semantic"] = "structure"
    size: int = Field(default=800, ge=50, le=20_000)
    overlap: int = Field(default=100, ge=0)

    @model_validator(mode="after")
    def overlap_below_size(self) -> "ChunkingSettings":
        if self.overlap >= self.size:
            raise ValueError(f"chunking.overlap ({self.overlap}) must be smaller than chunking.size ({self.size})")
        return self


class IngestSettings(SettingsSection):
    """How folders are read: by default a symbolic link that leads outside the ingested folder is skipped."""

    follow_links: bool = False


class RetrievalSettings(SettingsSection):
    """First-stage search: which signal, how many candidates, how many per prefetch before fusion."""

    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    k: int = Field(default=20, ge=1, le=1000)
    prefetch_k: int = Field(default=50, ge=1, le=5000)


class RerankSettings(SettingsSection):
    """Second stage: `maxsim` (offline, bundled MiniLM), `cross-encoder` (any model path) or `none`.

    Off by default: on the demo QA set MaxSim over hybrid (RRF k=10, heading-indexed chunks) lowered nDCG@5 from
    0.926 to 0.906 (95% CI of the difference [-0.039, -0.001]; benchmarks/retrieval_quality.py)."""

    kind: Literal["maxsim", "cross-encoder", "none"] = "none"
    model: str | None = None
    top_n: int = Field(default=3, ge=1, le=50)

    @model_validator(mode="after")
    def model_for_cross_encoder(self) -> "RerankSettings":
        if self.kind == "cross-encoder" and not self.model:
            raise ValueError("rerank.kind 'cross-encoder' needs rerank.model: a model name or local folder")
        if self.kind != "cross-encoder" and self.model:
            raise ValueError("rerank.model is only used by kind 'cross-encoder'; remove it or set kind: cross-encoder")
        return self


class TrackingSettings(SettingsSection):
    """Where compiles are logged. The tracking store itself comes from MLFLOW_TRACKING_URI (default: a SQLite
    file mlflow.db in the Tessera folder)."""

    experiment: str = Field(default="tessera", min_length=1)
    registered_model: str = Field(default="tessera-rag", pattern=r"^[A-Za-z0-9_.\-]{1,128}$")


class TracingSettings(SettingsSection):
    """What MLflow traces keep: the question text (always redacted first), or, when off, no question text at all."""

    record_questions: bool = True


class Settings(BaseSettings):
    """Every knob of a Tessera deployment. Environment variables `TESSERA_<FIELD>` (nested: `TESSERA_RERANK__KIND`)
    override the YAML file."""

    model_config = SettingsConfigDict(env_prefix="TESSERA_", env_nested_delimiter="__", extra="forbid")

    # The embedded default for this CPU: Qwen2.5-Coder-0.5B where it has native bf16, SmolLM2-135M elsewhere.
    lm: str = Field(default_factory=default_embedded_lm)
    judge_lm: str | None = None
    # The embedded LMs' compute dtype; `auto` is bfloat16 on CPUs with native bf16 (AVX512-BF16, AMX, Arm BF16).
    embedded_dtype: DtypeSetting = "auto"
    max_tokens: int = Field(default=128, ge=1, le=32_000)
    embedder: str = DEFAULT_EMBEDDER
    # auto: bfloat16 on CPUs with native bf16 (1.84x bare float32 encode, cosine >= 0.9999, same recall@5 and the
    # same injection verdicts on eval_sets/safety.jsonl; benchmarks/embedding_speed.py), float32 elsewhere.
    embedder_dtype: EmbedderDtype = "auto"
    collection: str = Field(default="docs", pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    store: StoreSettings = StoreSettings()
    ingest: IngestSettings = IngestSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    rerank: RerankSettings = RerankSettings()
    guards: GuardSettings = GuardSettings()
    tracking: TrackingSettings = TrackingSettings()
    tracing: TracingSettings = TracingSettings()
    tools: ToolSettings = ToolSettings()
    serving: ServingSettings = ServingSettings()

    @field_validator("lm", "judge_lm")
    @classmethod
    def lm_string(cls, value: str | None) -> str | None:
        # Only the provider is checked here: its credentials matter only to the commands that call the LM.
        if value is not None:
            try:
                lm_provider(value)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments, then TESSERA_* variables, then the YAML file.
        return init_settings, env_settings, YamlFileSource(settings_cls)


_yaml_data: ContextVar[dict] = ContextVar("tessera_yaml_data", default={})


class YamlFileSource(PydanticBaseSettingsSource):
    """The parsed `tessera.yaml` of the current `load_settings` call."""

    def get_field_value(self, field, field_name):  # noqa: ANN001 - pydantic-settings' signature
        return None, field_name, False

    def __call__(self) -> dict:
        return _yaml_data.get()


def load_settings(path: str | Path | None = None, **overrides: object) -> Settings:
    """Load `path` (or `./tessera.yaml` when present), apply TESSERA_* variables, then `overrides`.

    Raises ConfigError naming each bad field and what to put there.
    """
    data: dict = {}
    if path is None and Path(DEFAULT_CONFIG_FILE).is_file():
        path = DEFAULT_CONFIG_FILE
    if path is not None:
        path = Path(path)
        if path.is_dir():
            raise ConfigError(f"Config file {path} is a folder. Name the YAML file itself, e.g. {path / DEFAULT_CONFIG_FILE}.")
        if not path.is_file():
            raise ConfigError(f"Config file {path} does not exist. Create it or omit --config to use the defaults.")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{path} is not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8."
            ) from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
        except RecursionError as exc:
            # PyYAML parses nested collections recursively; a few hundred levels exhaust Python's stack.
            raise ConfigError(
                f"{path} nests lists or mappings too deeply to read; settings need only a few levels."
            ) from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a mapping of settings, not {type(data).__name__}.")
        not_names = [key for key in data if not isinstance(key, str)]
        if not_names:
            raise ConfigError(f"{path}: {not_names[0]!r} is not a setting name; valid ones are: {', '.join(Settings.model_fields)}.")
    token = _yaml_data.set(data)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None
    except SettingsError as exc:
        raise ConfigError(_describe_undecodable_variables(exc)) from None
    finally:
        _yaml_data.reset(token)


def _describe(exc: ValidationError, path: Path | None) -> str:
    where = f" in {path} or TESSERA_* variables" if path else " in TESSERA_* variables or arguments"
    lines = [f"Invalid settings{where}:"]
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            section = _section_at([str(part) for part in error["loc"][:-1]]) or Settings
            message = f"unknown setting; valid ones here are: {', '.join(section.model_fields)}"
        elif error["type"] == "list_type" and isinstance(error.get("input"), str):
            message += f"; a list in a TESSERA_* variable is JSON, e.g. '{json.dumps(error['input'].split(','))}'"
        lines.append(f"  {field}: {message}")
    return "\n".join(lines)


def _describe_undecodable_variables(exc: SettingsError) -> str:
    """pydantic-settings names only the top-level field; find the variables whose list or section is not JSON."""
    prefix = Settings.model_config["env_prefix"]
    lines = []
    for name, value in os.environ.items():
        if not name.upper().startswith(prefix):
            continue
        path = name[len(prefix):].lower().split(Settings.model_config["env_nested_delimiter"])
        field = _section_at(path[:-1])
        annotation = field.model_fields[path[-1]].annotation if field and path[-1] in field.model_fields else None
        if annotation is None or not _is_structured(annotation):
            continue
        try:
            json.loads(value)
        except ValueError:
            example = json.dumps([part.strip() for part in value.split(",")]) if _is_list(annotation) else '{"name": "value"}'
            lines.append(f"  {name} is not valid JSON; lists and sections in TESSERA_* variables are JSON, e.g. {name}='{example}'")
    return "\n".join(["Invalid settings in TESSERA_* variables:", *lines]) if lines else f"Invalid TESSERA_* variable: {exc}"


def _section_at(path: Sequence[str]) -> type[BaseModel] | None:
    """The settings section at a dotted path (`["guards", "deny_list"]`), or None when the path names no section."""
    section: type[BaseModel] = Settings
    for part in path:
        field = section.model_fields.get(part)
        if field is None or not _is_section(field.annotation):
            return None
        section = field.annotation
    return section


def _is_section(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_list(annotation: object) -> bool:
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_is_list(arg) for arg in get_args(annotation))
    return get_origin(annotation) in (list, tuple, set)


def _is_structured(annotation: object) -> bool:
    """A field pydantic-settings decodes from JSON when it comes from one variable."""
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_is_structured(arg) for arg in get_args(annotation))
    return _is_section(annotation) or get_origin(annotation) in (list, tuple, set, dict)
