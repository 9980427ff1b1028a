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


def annotate(key: str, value: Any) -> None:
    """Record `value` as attribute `key` of the span now open (the caller's stage in a request's trace), if any.

    For facts too cheap to deserve a span of their own: inside a trace a span costs about 0.35 ms, this about 0.01 ms.
    """
    current = mlflow.get_current_active_span()
    if current is not None:
        current.set_attribute(key, value)
