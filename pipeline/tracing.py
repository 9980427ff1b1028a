"""Trace spans for the pipeline's stages, through MLflow tracing.

Library code opens spans; scripts decide where traces go (`MLFLOW_TRACKING_URI`, experiment).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import mlflow


@contextlib.contextmanager
def span(name: str, span_type: str, inputs: dict[str, Any] | None = None) -> Iterator[Any]:
    """A span named `name` of `span_type` (RETRIEVER, RERANKER, CHAT_MODEL, GUARDRAIL, …) around a stage."""
    with mlflow.start_span(name=name, span_type=span_type) as current:
        if inputs:
            current.set_inputs(inputs)
        yield current
