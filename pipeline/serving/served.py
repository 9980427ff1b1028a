"""The registered model one serving worker holds: loaded (after its manifest checks out), described (name, version,
alias, index size) and called one question at a time, as a whole answer or as a stream of text deltas."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import UntrustedModelError
from pipeline.serving.registry import _REGISTERED_URI

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """Which registered model is served: `name` is what OpenAI clients pass as `model`."""

    uri: str
    name: str
    version: str
    alias: str | None
    lm: str | None = None


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Answer:
    """The model's last word on a question: what the output guard let through, and why."""

    text: str
    citations: list[str] = field(default_factory=list)
    blocked: bool = False
    guard: list[Any] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def extra(self) -> dict[str, Any]:
        """The Tessera fields that an OpenAI response carries beside the answer."""
        return {"citations": self.citations, "sources": self.sources, "blocked": self.blocked, "guard": self.guard}


def describe_uri(uri: str) -> ModelInfo:
    """Name, version and alias of registered model `uri` (`models:/<name>/<version>` or `models:/<name>@<alias>`)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    match = _REGISTERED_URI.fullmatch(uri)
    if match is None:
        raise UntrustedModelError(
            f"{uri!r} is not a registered model URI. scripts/serve.py serves registered models only, whose files the "
            "registry vouches for: models:/<name>/<version> or models:/<name>@<alias>, e.g. models:/tessera-rag@champion."
        )
    name, version, alias = match["name"], match["version"], match["alias"]
    if alias:
        try:
            version = MlflowClient().get_model_version_by_alias(name, alias).version
        except MlflowException as exc:
            raise UntrustedModelError(f"Cannot resolve {uri}: {exc.message}. Set the alias with scripts/promote.py.") from exc
    return ModelInfo(uri=uri, name=name, version=str(version), alias=alias)


class ServedModel:
    """A loaded pyfunc model and what is known about it; `answer` and `stream` are safe to call from many threads
    as far as the model's own `predict` is."""

    def __init__(self, pyfunc_model: Any, info: ModelInfo, load_seconds: float = 0.0) -> None:
        import mlflow.pyfunc

        self.pyfunc = pyfunc_model
        self.python_model = pyfunc_model.unwrap_python_model()
        settings = getattr(self.python_model, "settings", None)
        self.info = ModelInfo(info.uri, info.name, info.version, info.alias, lm=getattr(settings, "lm", None))
        self.load_seconds = load_seconds
        self.loaded_at = time.time()
        self.streams = type(self.python_model).predict_stream is not mlflow.pyfunc.PythonModel.predict_stream
        schema = pyfunc_model.metadata.get_params_schema()
        # MLflow drops (and warns about) params a signature does not declare, so only declared ones are passed.
        self._params = {param.name for param in schema.params} if schema is not None else set()

    @classmethod
    def load(cls, uri: str, dst: Path | None = None) -> ServedModel:
        """Load registered model `uri` through `load_verified_model` into `dst` (a private copy per worker)."""
        from pipeline.serving.registry import load_verified_model

        info = describe_uri(uri)
        started = time.perf_counter()
        loaded = load_verified_model(f"models:/{info.name}/{info.version}", dst)
        return cls(loaded, info, time.perf_counter() - started)

    def index_size(self) -> int | None:
        """Points in the model's collection, when the model has an index it can count."""
        store, settings = getattr(self.python_model, "store", None), getattr(self.python_model, "settings", None)
        if store is None or settings is None or not hasattr(store, "count"):
            return None
        try:
            return int(store.count(settings.collection))
        except Exception:  # /health reports an index it cannot count as unknown, it does not fail
            logger.warning("cannot count the served index", exc_info=True)
            return None

    def params(self, **values: str) -> dict[str, str] | None:
        chosen = {name: value for name, value in values.items() if name in self._params and value is not None}
        return chosen or None

    def answer(self, question: str, params: dict[str, str] | None = None) -> Answer:
        import pandas as pd

        output = self.pyfunc.predict(pd.DataFrame({"question": [question]}), params=params)
        return answer_from_output(output)

    def predict_frame(self, frame: Any, params: dict[str, str] | None = None) -> Any:
        return self.pyfunc.predict(frame, params=params)

    def stream(self, question: str, params: dict[str, str] | None = None) -> Iterator[Delta | Answer]:
        """Text deltas, then the final Answer. A model without `predict_stream` gives its whole answer as one delta."""
        if not self.streams:
            answer = self.answer(question, params)
            yield Delta(answer.text)
            yield answer
            return
        for event in self.pyfunc.predict_stream({"question": question}, params=params):
            kind = event.get("type") if isinstance(event, dict) else None
            if kind == "delta":
                yield Delta(str(event.get("text", "")))
            elif kind == "final":
                yield answer_from_event(event)
                return
            else:
                logger.warning("ignoring a stream event that is neither a delta nor final: %r", event)
        raise RuntimeError("the model's stream ended without a final event")


def answer_from_output(output: Any) -> Answer:
    """The first row of what `predict` returned: a DataFrame with answer/citations/blocked (…), or a list of text."""
    if hasattr(output, "columns"):
        row = output.iloc[0].to_dict()
        usage = row.get("usage") if isinstance(row.get("usage"), dict) else {}
        row["usage"] = {name: row.get(name, usage.get(name)) for name in ("prompt_tokens", "completion_tokens")}
        return answer_from_event(row)
    first = output[0] if isinstance(output, (list, tuple)) or hasattr(output, "__array__") else output
    if isinstance(first, dict):
        return answer_from_event(first)
    return Answer(text=str(first))


def answer_from_event(event: dict[str, Any]) -> Answer:
    usage = event.get("usage") or {}
    return Answer(
        text=str(event.get("answer", "")),
        citations=_strings(event.get("citations")),
        blocked=bool(event.get("blocked", False)),
        guard=_verdicts(event.get("guard")),
        sources=_strings(event.get("sources")),
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
    )


def _strings(value: Any) -> list[str]:
    if value is None or isinstance(value, float):  # a missing list cell reads as NaN
        return []
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value]


def _verdicts(value: Any) -> list[Any]:
    if value is None or isinstance(value, float):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [value]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _count(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):  # a missing count cell reads as NaN, which int() refuses
        return None
