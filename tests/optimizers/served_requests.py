"""Served requests for the feedback, calibration, monitoring and review-page tests: the registered test model
(scripted LM, tests/pipeline/serving/tessera_models.py) answers through its pyfunc `predict` with tracing on, as
scripts/serve.py's workers do, into an experiment of its own; and a scripted judge LM."""

import uuid

import dspy
import mlflow
import pandas as pd
import pytest

from optimizers.trace_checks import JudgeLM
from pipeline.lm.scripted import FieldLM, default_reply
from tests.pipeline.serving.tessera_models import SCRIPTED_LM, registered_model

_loaded: dict[str, object] = {}


class ServedRequests:
    """Answers questions with the served model, one traced request each; `experiment_id` holds their traces."""

    def __init__(self, model) -> None:
        self.model = model
        self.experiment_id = mlflow.create_experiment(f"served-{uuid.uuid4().hex[:8]}")

    def ask(self, *questions: str) -> list[str]:
        """The trace ids of one served request per question, in order."""
        ids = []
        mlflow.set_experiment(experiment_id=self.experiment_id)
        mlflow.tracing.enable()
        try:
            for question in questions:
                self.model.predict(pd.DataFrame({"question": [question]}))
                ids.append(mlflow.get_last_active_trace_id())
        finally:
            mlflow.tracing.disable()
        for trace_id in ids:
            mlflow.get_trace(trace_id, flush=True)
        return ids


def scripted_judge(score, name: str = "scripted-judge") -> JudgeLM:
    """A judge LM whose score is `score(judge_prompt)` (a string such as "0.9"; raising fails the call)."""
    def reply(field: str, kind: str, prompt: str, coached: bool = False):
        return score(prompt) if field == "score" else default_reply(field, kind, prompt, coached)

    return JudgeLM(FieldLM(reply), dspy.ChatAdapter(), name)


def assessments(trace_id: str) -> list:
    return list(mlflow.get_trace(trace_id).info.assessments or [])


def served_requests(tmp_path_factory) -> ServedRequests:
    """A fresh experiment to serve into, with the test model loaded once per session."""
    if "model" not in _loaded:
        uri = registered_model(tmp_path_factory)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("TESSERA_SERVING_LM", SCRIPTED_LM)
            _loaded["model"] = mlflow.pyfunc.load_model(uri)
    return ServedRequests(_loaded["model"])
