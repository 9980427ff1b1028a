"""Trace spans for the pipeline's stages, through MLflow tracing when it is installed and enabled.

Library code opens spans; scripts decide where traces go (`MLFLOW_TRACKING_URI`, experiment).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


class _NoSpan:
    def set_outputs(self, outputs: Any) -> None:
        """Nothing records spans when MLflow is absent."""

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        """Nothing records spans when MLflow is absent."""


@contextlib.contextmanager
def span(name: str, span_type: str, inputs: dict[str, Any] | None = None) -> Iterator[Any]:
    """A span named `name` of `span_type` (RETRIEVER, RERANKER, CHAT_MODEL, GUARDRAIL, …) around a stage."""
    try:
        import mlflow
    except ImportError:
        yield _NoSpan()
        return
    with mlflow.start_span(name=name, span_type=span_type) as current:
        if inputs:
            current.set_inputs(inputs)
        yield current
