"""The program a batch evaluation scores, loaded from what a user names: a saved program file
(`.tessera/compiled/rag-bootstrap-light-seed0.json`), a registered model (`models:/tessera-rag@champion`,
`models:/tessera-rag/3`), a run's model (`runs:/<run id>/model`, found in the registry by its run), or nothing (the
uncompiled program the settings describe)."""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dspy

from optimizers.programs import PROGRAMS, program_spec
from pipeline.config import Settings
from pipeline.errors import ConfigError, UntrustedModelError
from pipeline.store.base import VectorStore

_RUN_URI = re.compile(r"runs:/(?P<run_id>[0-9a-f]{32})(?:/(?P<path>.+))?")
HOSTED_THREADS, EMBEDDED_THREADS = 8, 1
URI_SCHEMES = ("models:", "runs:", "http://", "https://", "s3://", "file:")


@dataclass
class EvaluationTarget:
    """A program with what it runs on, closed by `close()`."""

    label: str
    kind: str
    program: dspy.Module
    settings: Settings
    store: VectorStore
    lm: dspy.BaseLM | None
    adapter: Any
    _close: list[Callable[[], None]] = field(default_factory=list)

    def dspy_context(self) -> contextlib.AbstractContextManager:
        values = {"lm": self.lm} if self.lm is not None else {}
        if self.adapter is not None:
            values["adapter"] = self.adapter
        return dspy.context(**values)

    def default_threads(self) -> int:
        """1 for an embedded model (one CPU model answers one question at a time), 8 for a hosted one."""
        from pipeline.lm.factory import is_embedded

        model = str(getattr(self.lm, "model", "") or self.settings.lm)
        return EMBEDDED_THREADS if is_embedded(model) else HOSTED_THREADS

    def close(self) -> None:
        for close in reversed(self._close):
            close()
        self._close.clear()


def load_target(model: str | None, settings: Settings, *, kind: str | None = None,
                with_lm: bool = True) -> EvaluationTarget:
    """Load what `model` names (see the module docstring); `kind` (rag or agent) overrides the kind a program file's
    name gives. `with_lm=False` makes no LM at all (retriever-only evaluation)."""
    if kind is not None:
        program_spec(kind)
    if model is None:
        return _from_settings(settings, kind or "rag", None, with_lm)
    if model.startswith(URI_SCHEMES):
        return _from_registry(registered_uri(model), model)
    path = Path(model)
    if not path.is_file():
        raise ConfigError(
            f"Program file {path} does not exist. Name a program saved by scripts/compile.py "
            "(.tessera/compiled/<program>-<optimizer>-<budget>-seed<n>.json) or a models:/ URI."
        )
    return _from_settings(settings, kind or _kind_of_file(path), path, with_lm)


def registered_uri(model: str) -> str:
    """`models:/...` as given, or the registered version a `runs:/<run id>/<path>` model was registered as."""
    if model.startswith("models:/"):
        return model
    run = _RUN_URI.fullmatch(model)
    if run is None:
        raise ConfigError(
            f"{model!r} is not a model Tessera can evaluate. Name a registered model (models:/tessera-rag@champion, "
            "models:/tessera-rag/3), a run's model (runs:/<32-hex run id>/model) or a saved program file (.json)."
        )
    return _registered_uri_of_run(run["run_id"], run["path"] or "model", model)


def _kind_of_file(path: Path) -> str:
    """scripts/compile.py names its files <program>-<optimizer>-...json."""
    kind = path.name.split("-", 1)[0]
    if kind not in PROGRAMS:
        raise ConfigError(
            f"Cannot tell which program {path.name} holds; say it with --program ({', '.join(PROGRAMS)}).")
    return kind


def _from_settings(settings: Settings, kind: str, path: Path | None, with_lm: bool) -> EvaluationTarget:
    from pipeline.lm.factory import make_lm
    from pipeline.lm.plain_adapter import adapter_for
    from pipeline.store.factory import require_collection
    from pipeline.wiring import open_configured_store

    store = open_configured_store(settings)
    closers = [store.close]
    try:
        require_collection(store, settings.collection)
        program = program_spec(kind).build(settings, store)
        if hasattr(program, "close"):
            closers.append(program.close)  # the agent's MCP servers
        if path is not None:
            try:
                program.load(str(path), allow_pickle=False)
            except Exception as exc:  # noqa: BLE001 - any unreadable state means the same to the user
                raise ConfigError(f"{path} is not a saved {kind} program ({type(exc).__name__}: {exc}).") from exc
    except BaseException:
        for close in reversed(closers):
            close()
        raise
    lm = make_lm(settings.lm, max_tokens=settings.max_tokens, dtype=settings.embedded_dtype) if with_lm else None
    return EvaluationTarget(str(path) if path else f"uncompiled {kind} program", kind, program, settings, store, lm,
                            adapter_for(settings.lm) if with_lm else None, closers)


def _from_registry(uri: str, label: str) -> EvaluationTarget:
    """The registered model, verified against its manifest, loaded as the pyfunc model serving loads it; the
    program is evaluated in-process (its prediction carries the passages a judge reads)."""
    from pipeline.serving.registry import load_verified_model

    loaded = load_verified_model(uri, Path(tempfile.mkdtemp(prefix="tessera-eval-model-")))
    served = loaded.unwrap_python_model().served
    return EvaluationTarget(label, served.kind, served.program, served.settings, served.store, served.lm,
                            served.adapter, [served.store.close])


def _registered_uri_of_run(run_id: str, path: str, given: str) -> str:
    """`models:/<name>/<version>` of the version registered from this run's model: Tessera loads only registered
    models, whose manifest vouches for their files."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        versions = MlflowClient().search_model_versions(f"run_id = '{run_id}'")
    except MlflowException as exc:
        raise UntrustedModelError(f"Cannot search the model registry for {given}: {exc.message}") from exc
    for version in versions:
        if version.source.rstrip("/").endswith(f"/{path.strip('/')}") or len(versions) == 1:
            return f"models:/{version.name}/{version.version}"
    raise UntrustedModelError(
        f"No registered model version comes from {given}. Tessera evaluates registered models only (their manifest "
        "vouches for their files): register it with scripts/compile.py, or name it as models:/<name>/<version>."
    )
