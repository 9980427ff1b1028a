"""The compiled program as one MLflow pyfunc model: program state + settings + a snapshot of the index.

`load_verified_model(uri).predict(pd.DataFrame({"question": [...]}))` (pipeline/serving/registry.py) checks the
model's files against its registered manifest, then rebuilds the guarded RAG program from the logged settings,
points it at the bundled index copy (or the Qdrant server the settings name), loads the compiled demos and
instructions, and answers. This file is itself an artifact of the model: loading a model runs its copy of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.models
import mlflow.pyfunc
import pandas as pd

PROGRAM = "program"
SETTINGS = "settings"
INDEX = "index"


class TesseraModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        import dspy

        from pipeline.config import Settings
        from pipeline.wiring import build_rag, configure_lm, open_configured_store

        data = json.loads(Path(context.artifacts[SETTINGS]).read_text(encoding="utf-8"))
        if INDEX in context.artifacts:
            data.setdefault("store", {})["path"] = context.artifacts[INDEX]
        self.settings = Settings(**data)
        self.store = open_configured_store(self.settings)
        if dspy.settings.lm is None:
            configure_lm(self.settings)
        self.program = build_rag(self.settings, self.store)
        # The program state is JSON; a pickled state would run code on load, so it is refused.
        self.program.load(context.artifacts[PROGRAM], allow_pickle=False)

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        questions = model_input["question"].tolist() if hasattr(model_input, "columns") else list(model_input)
        rows = []
        for question in questions:
            prediction = self.program(question=question)
            rows.append({"answer": prediction.answer, "citations": list(prediction.citations), "blocked": bool(prediction.blocked)})
        return pd.DataFrame(rows)


def settings_for_model(settings) -> dict:
    """The settings to ship with the model: secrets left out, the index path replaced at load time."""
    data = settings.model_dump(mode="json", exclude={"store": {"api_key"}})
    data["store"].pop("path", None)
    return data


# MLflow "models from code": logging passes this file's path, loading runs it and takes the model set here.
mlflow.models.set_model(TesseraModel())
