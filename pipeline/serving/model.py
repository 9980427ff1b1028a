"""The compiled program as one MLflow pyfunc model: program state, settings, guard configuration and an index snapshot.

    mlflow.pyfunc.load_model("models:/tessera-rag@champion").predict(pd.DataFrame({"question": [...]}))

returns one row per question: answer, citations (chunk ids), sources (files), blocked, guard (JSON list of the
guards' verdicts), prompt_tokens, completion_tokens. `predict_stream({"question": ...})` yields
{"type": "delta", "text": ...} events as the LM writes the answer, then one {"type": "final", ...} event. Optional
params: request_id and api_key_id, recorded as tags on the request's MLflow trace.

Scripted LM (tests, load benchmarks): set `TESSERA_SERVING_LM=scripted/<ms>`, e.g. `TESSERA_SERVING_LM=scripted/20`,
in the environment of the process that loads the model. Every LM call then takes <ms> milliseconds, answers with
the first sentence of the top passage and streams word by word. Any LM string works there too
(`openai/gpt-4.1-mini`, `local/qwen2.5-coder-0.5b`) and replaces the logged LM.

This file is itself an artifact of the model (MLflow "models from code"): loading a model runs its copy of it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import mlflow.models
import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    DEADLINE_EXCEEDED,
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    TEMPORARILY_UNAVAILABLE,
)

log = logging.getLogger(__name__)

QUESTION = "question"
OUTPUT_COLUMNS = ("answer", "citations", "sources", "blocked", "guard", "prompt_tokens", "completion_tokens")
EXAMPLE = f'{{"dataframe_records": [{{"{QUESTION}": "How do I rotate the API keys?"}}]}}'


class TesseraModel(mlflow.pyfunc.PythonModel):
    """Thin: check the input, run the program inside its own `dspy.context`, convert the output."""

    def load_context(self, context) -> None:
        from pipeline.serving.program import load_served_program

        self.served = load_served_program(context.artifacts, context.model_config)
        self.settings, self.store, self.program = self.served.settings, self.served.store, self.served.program

    def predict(self, context, model_input, params: dict[str, Any] | None = None) -> pd.DataFrame:
        questions = questions_from(model_input)
        rows = [self._answer(question, params or {}) for question in questions]
        return pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS))

    def predict_stream(self, context, model_input, params: dict[str, Any] | None = None) -> Iterator[dict]:
        """Checked before the first event, so a bad request fails before a stream starts."""
        questions = questions_from(model_input)
        if len(questions) != 1:
            raise MlflowException(f"predict_stream answers one question at a time; got {len(questions)}.", INVALID_PARAMETER_VALUE)
        return self._stream(questions[0], params or {})

    def _answer(self, question: str, params: dict[str, Any]) -> dict[str, Any]:
        from dspy.utils.usage_tracker import track_usage

        from pipeline.serving.program import record_usage

        served = self.served
        try:
            with served.request_span(params.get("request_id"), params.get("api_key_id")) as request:
                with track_usage() as usage, served.dspy_context():
                    prediction = served.program(question=question)
                record_usage(request, usage.get_total_tokens())
        except Exception as exc:  # every failure leaves as an MlflowException, without a traceback
            raise failure(exc) from exc
        return output_row(prediction, usage.get_total_tokens())

    def _stream(self, question: str, params: dict[str, Any]) -> Iterator[dict]:
        import contextlib

        from dspy.utils.usage_tracker import track_usage

        from pipeline.serving.answer_stream import Delta, stream_program
        from pipeline.serving.program import record_usage

        served = self.served
        usage = None

        @contextlib.contextmanager
        def around():
            nonlocal usage
            with served.request_span(params.get("request_id"), params.get("api_key_id")) as request:
                with track_usage() as tracker:
                    usage = tracker
                    yield
                record_usage(request, tracker.get_total_tokens())

        sent = ""
        try:
            for item in stream_program(served.program, lm=served.lm, adapter=served.adapter, around=around, question=question):
                if isinstance(item, Delta):
                    sent += item.text
                    yield {"type": "delta", "text": item.text}
                    continue
                final = output_row(item.prediction, usage.get_total_tokens() if usage else {})
                # Deltas are the LM's text before the output guard; the final answer is what the guard let through.
                superseded = not final["answer"].startswith(sent)
                if not superseded and len(final["answer"]) > len(sent):
                    yield {"type": "delta", "text": final["answer"][len(sent):]}
                yield final_event(final, superseded)
        except Exception as exc:  # as in predict
            raise failure(exc) from exc


def questions_from(model_input: Any) -> list[str]:
    """The questions of a DataFrame (a `question` column), a dict ({"question": text or [texts]}), or a list of dicts
    or texts; MlflowException(INVALID_PARAMETER_VALUE) saying what to send otherwise."""
    if isinstance(model_input, pd.DataFrame):
        if QUESTION not in model_input.columns:
            raise _bad_input(f"The input has no {QUESTION!r} column (columns: {', '.join(map(str, model_input.columns)) or 'none'}).")
        values = model_input[QUESTION].tolist()
    elif isinstance(model_input, dict):
        if QUESTION not in model_input:
            raise _bad_input(f"The input has no {QUESTION!r} field (fields: {', '.join(map(str, model_input)) or 'none'}).")
        value = model_input[QUESTION]
        values = list(value) if isinstance(value, (list, tuple)) else [value]
    elif isinstance(model_input, (list, tuple)):
        values = [row.get(QUESTION) if isinstance(row, dict) else row for row in model_input]
    else:
        raise _bad_input(f"The input is a {type(model_input).__name__}; send a table with a {QUESTION!r} column.")
    if not values:
        raise _bad_input("The input holds no question.")
    for number, value in enumerate(values, start=1):
        if not isinstance(value, str):
            raise _bad_input(f"Question {number} is {'missing' if value is None else 'a ' + type(value).__name__}, not text.")
        if not value.strip():
            raise _bad_input(f"Question {number} is empty.")
    return values


def _bad_input(problem: str) -> MlflowException:
    return MlflowException(
        f"{problem} Send one question per row as text, for example {EXAMPLE} "
        f'or {{"inputs": [{{"{QUESTION}": "How do I rotate the API keys?"}}]}}.',
        INVALID_PARAMETER_VALUE,
    )


def failure(exc: Exception) -> MlflowException:
    """The MlflowException a failed call leaves with: the caller's fault (400), the LM's (503, 504 on a timeout), or
    the model's (500). Its message names the error, never the traceback, which goes to the server's log."""
    import dspy.utils.exceptions as dspy_errors

    from pipeline.errors import LMError, QueryError

    if isinstance(exc, MlflowException):
        return exc
    if isinstance(exc, QueryError):
        return MlflowException(str(exc), INVALID_PARAMETER_VALUE)
    log.error("the model failed to answer", exc_info=exc)
    summary = f"{type(exc).__name__}: {str(exc)[:300]}"
    if isinstance(exc, (dspy_errors.LMTimeoutError, TimeoutError)):
        return MlflowException(f"The LM did not answer in time ({summary}). Try again later.", DEADLINE_EXCEEDED)
    if isinstance(exc, (LMError, dspy_errors.LMError)):
        return MlflowException(f"The LM could not answer ({summary}). Try again later.", TEMPORARILY_UNAVAILABLE)
    return MlflowException(f"The model failed to answer ({summary}).", INTERNAL_ERROR)


def output_row(prediction: Any, usage: dict[str, dict]) -> dict[str, Any]:
    hits = getattr(prediction, "hits", None) or []
    return {
        "answer": str(prediction.answer),
        "citations": [str(citation) for citation in prediction.citations],
        "sources": list(dict.fromkeys(hit.chunk.source for hit in hits)),
        "blocked": bool(prediction.blocked),
        "guard": json.dumps([verdict_summary(result) for result in getattr(prediction, "guard_results", None) or []]),
        "prompt_tokens": sum(int(counts.get("prompt_tokens") or 0) for counts in usage.values()),
        "completion_tokens": sum(int(counts.get("completion_tokens") or 0) for counts in usage.values()),
    }


def verdict_summary(result: Any) -> dict[str, Any]:
    """A guard's verdict without its reason or redacted text, which may quote what the guard caught."""
    return {"guard": result.guard, "allowed": bool(result.allowed), "category": result.category, "checked": bool(result.checked)}


def final_event(row: dict[str, Any], superseded: bool) -> dict[str, Any]:
    return {
        "type": "final",
        "answer": row["answer"],
        "citations": row["citations"],
        "sources": row["sources"],
        "blocked": row["blocked"],
        "guard": json.loads(row["guard"]),
        "usage": {"prompt_tokens": row["prompt_tokens"], "completion_tokens": row["completion_tokens"]},
        "superseded": superseded,
    }


# MLflow "models from code": logging passes this file's path, loading runs it and takes the model set here.
mlflow.models.set_model(TesseraModel())
