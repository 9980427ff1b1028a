"""The program a loaded model serves, rebuilt from the model's artifacts: its settings and guard configuration, a
private copy of the index snapshot, the compiled state, and its own LM.

Every serving worker (a `mlflow models serve` worker, a Spark Python worker, a notebook) loads the model itself.
Qdrant Edge locks its folder and rewrites files when it opens a shard, so each process searches a private copy of
the snapshot (pipeline/serving/snapshot.py), removed when the process exits; the registered files are only read. The LM is the
logged one unless `TESSERA_SERVING_LM` names another (any LM string, or `scripted/<ms>`); it is passed to DSPy with
`dspy.context` on every call, never with `dspy.configure`.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy
import yaml

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.lm.paced import is_scripted, scripted_lm
from pipeline.serving.snapshot import unpack_private_copy
from pipeline.store.base import VectorStore

log = logging.getLogger(__name__)

PROGRAM, SETTINGS, GUARDS, INDEX = "program", "settings", "guards", "index"
PROGRAMS = ("rag", "agent")
SERVING_LM_VARIABLE = "TESSERA_SERVING_LM"
REGISTERED_MODEL_META = "registered_model_meta"  # written by MLflow into a model downloaded from the registry


@dataclass(frozen=True)
class ModelIdentity:
    """Which registered model this is, for trace tags: unknown parts stay None (a model loaded from a folder)."""

    name: str | None = None
    version: str | None = None
    alias: str | None = None

    def tags(self) -> dict[str, str]:
        named = {"tessera.model_name": self.name, "tessera.model_version": self.version, "tessera.model_alias": self.alias}
        return {key: value for key, value in named.items() if value}


@dataclass
class ServedProgram:
    program: dspy.Module
    kind: str
    settings: Settings
    store: VectorStore
    lm: dspy.BaseLM
    adapter: Any
    identity: ModelIdentity
    tracing: bool

    def dspy_context(self) -> contextlib.AbstractContextManager:
        return dspy.context(lm=self.lm, **({"adapter": self.adapter} if self.adapter is not None else {}))

    @contextlib.contextmanager
    def request_span(self, request_id: str | None = None, api_key_id: str | None = None) -> Iterator[Any]:
        """One trace per request, tagged with the model's name, version, alias, the caller's key id and request id
        (the key itself never reaches the server's model). Yields the span (None when tracing is off), for
        `record_usage`."""
        import mlflow
        from mlflow.tracing.provider import is_tracing_enabled

        if not self.tracing and is_tracing_enabled():
            # Served requests are the process's work: with tracing off by the deployment none is recorded. Turned
            # off here, not at load, because mlflow.pyfunc.load_model restores the tracing state it found.
            log.info("MLflow tracing turned off in this process: the served model's settings say serving.tracing: false")
            mlflow.tracing.disable()
        if not is_tracing_enabled():
            yield None
            return
        with mlflow.start_span(name=f"tessera.{self.kind}.request", span_type="CHAIN") as request:
            tags = self.identity.tags()
            if api_key_id:
                tags["tessera.api_key_id"] = api_key_id
            if request_id:
                tags["tessera.request_id"] = request_id
            mlflow.update_current_trace(tags=tags, client_request_id=request_id or None)
            yield request


def record_usage(request: Any, usage: Mapping[str, Mapping[str, Any]]) -> None:
    """The request's LM token counts (DSPy's usage tracker totals) as the request span's outputs, where online
    monitoring reads the cost; nothing when the request is not traced."""
    if request is None:
        return
    request.set_outputs({
        name: sum(int(counts.get(name) or 0) for counts in usage.values())
        for name in ("prompt_tokens", "completion_tokens")
    })


def load_served_program(artifacts: Mapping[str, str], model_config: Mapping[str, Any] | None = None) -> ServedProgram:
    """Build the served program from a model's artifacts (`PythonModelContext.artifacts`) and model config
    (`program`: rag or agent; `model_alias`: the alias to tag traces with; `tracing`: false for no traces, default
    the logged `serving.tracing`). A loader overrides them with `load_model(uri, model_config={...})` or, for
    `mlflow models serve`, `MLFLOW_PYFUNC_INFERENCE_CONFIG='{"tracing": false}'`; None means not set."""
    config = {key: value for key, value in (model_config or {}).items() if value is not None}
    kind = config.get("program", "rag")
    if kind not in PROGRAMS:
        raise ConfigError(f"The model's program {kind!r} is unknown; this Tessera serves {', '.join(PROGRAMS)}.")
    settings = model_settings(artifacts)
    store = _open_index(settings, artifacts)
    lm, adapter = serving_lm(settings)
    program = _build_program(kind, settings, store)
    # The program state is JSON; a pickled state would run code on load, so it is refused.
    program.load(artifacts[PROGRAM], allow_pickle=False)
    tracing = bool(config.get("tracing", settings.serving.tracing))
    return ServedProgram(program, kind, settings, store, lm, adapter, _identity(artifacts, config.get("model_alias")), tracing)


def model_settings(artifacts: Mapping[str, str]) -> Settings:
    """The logged settings with the logged guard configuration; the store path is the snapshot's, set at open."""
    data = json.loads(Path(artifacts[SETTINGS]).read_text(encoding="utf-8"))
    if GUARDS in artifacts:
        data["guards"] = json.loads(Path(artifacts[GUARDS]).read_text(encoding="utf-8"))
    if INDEX in artifacts:
        data.setdefault("store", {}).pop("url", None)
        data["store"]["path"] = artifacts[INDEX]
    return Settings(**data)


def serving_lm(settings: Settings) -> tuple[dspy.BaseLM, Any]:
    """The LM and adapter the model answers with: `TESSERA_SERVING_LM` when set, else the logged `lm`. An embedded
    LM's weights load here, so a worker's first request is not the one that waits for them. The adapter is always
    named (DSPy's ChatAdapter where the LM needs no other): a process-wide `dspy.configure(adapter=...)` made by
    whatever else runs in the process must not change how the served program prompts."""
    from pipeline.lm.embedded import TransformersEngine
    from pipeline.lm.factory import make_lm
    from pipeline.lm.plain_adapter import adapter_for

    name = os.environ.get(SERVING_LM_VARIABLE) or settings.lm
    if is_scripted(name):
        return scripted_lm(name), dspy.ChatAdapter()
    lm = make_lm(name, max_tokens=settings.max_tokens, dtype=settings.embedded_dtype)
    if isinstance(lm.engine, TransformersEngine):
        lm.engine.local_model()
    return lm, adapter_for(name) or dspy.ChatAdapter()


def _open_index(settings: Settings, artifacts: Mapping[str, str]) -> VectorStore:
    from pipeline.store.factory import require_collection
    from pipeline.wiring import open_configured_store

    if INDEX in artifacts:
        settings.store.path = unpack_private_copy(Path(artifacts[INDEX]))
    elif settings.store.url is None:
        raise ConfigError(
            "The model carries no index snapshot and its settings name no Qdrant server (store.url). Register it "
            "from a compile with an embedded store (scripts/compile.py), or set store.url before compiling."
        )
    store = open_configured_store(settings)
    atexit.register(store.close)  # after the copy's removal was registered, so it runs first
    require_collection(store, settings.collection)
    return store


def _build_program(kind: str, settings: Settings, store: VectorStore) -> dspy.Module:
    from pipeline import wiring

    if kind == "rag":
        return wiring.build_rag(settings, store)
    build_agent = getattr(wiring, "build_agent", None)
    if build_agent is None:
        raise ConfigError("This model serves the agent, but this Tessera has no agent (pipeline.wiring.build_agent).")
    return build_agent(settings, store)


def _identity(artifacts: Mapping[str, str], alias: str | None) -> ModelIdentity:
    """Name and version from the file MLflow writes beside a model it downloads from the registry; the alias as
    given by the loader, else every alias the registry gives that version now."""
    meta = Path(artifacts[SETTINGS]).parents[1] / REGISTERED_MODEL_META
    try:
        found = yaml.safe_load(meta.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return ModelIdentity(alias=alias)
    name, version = found.get("model_name"), found.get("model_version")
    name, version = (str(name) if name else None), (str(version) if version else None)
    if alias is None and name and version:
        alias = _aliases_now(name, version)
    return ModelIdentity(name, version, alias)


def _aliases_now(name: str, version: str) -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        aliases = MlflowClient().get_model_version(name, version).aliases
    except (MlflowException, OSError) as exc:
        log.warning("cannot read the aliases of %s version %s: %s", name, version, exc)
        return None
    return ",".join(sorted(aliases)) or None
