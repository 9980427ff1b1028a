"""A models-from-code pyfunc model that keeps the serving contract (predict on a question column, predict_stream
of deltas then one final event, request_id/api_key_id params) with a scripted LM, for the HTTP front-door tests.

What the question says scripts what happens: "explode" raises as a failing LM would, "hang" sleeps past the
server's deadline, "forbidden" is blocked by the input guard, "redact" streams text the output guard replaces.
SCRIPTED_LATENCY_MS adds a fixed LM latency to every answer.
"""

import json
import os
import time

import mlflow.models
import mlflow.pyfunc
import pandas as pd

REFUSAL = "blocked: policy"


class ScriptedServedModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        with open(context.artifacts["passages"], encoding="utf-8") as handle:
            self.passages = json.load(handle)
        self.latency = float(os.environ.get("SCRIPTED_LATENCY_MS", "0")) / 1000

    def _final(self, question, params):
        if "explode" in question:
            raise RuntimeError("the scripted LM is down")
        if "hang" in question:
            time.sleep(float(os.environ.get("SCRIPTED_HANG_S", "4")))
        if self.latency:
            time.sleep(self.latency)
        params = params or {}
        seen = f" [request {params.get('request_id')} key {params.get('api_key_id')}]" if params else ""
        if "forbidden" in question:
            return {"answer": REFUSAL, "citations": [], "blocked": True, "guard": [{"guard": "rules", "allowed": False}],
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0}}
        return {"answer": f"The admin API listens on port 8443 [1].{seen}", "citations": [self.passages[0]],
                "blocked": False, "guard": [{"guard": "rules", "allowed": True}],
                "usage": {"prompt_tokens": 10 + len(question.split()), "completion_tokens": 9}}

    def predict(self, context, model_input, params=None):
        rows = []
        for question in model_input["question"]:
            final = self._final(question, params)
            rows.append({"answer": final["answer"], "citations": final["citations"], "blocked": final["blocked"],
                         "guard": json.dumps(final["guard"]), **final["usage"]})
        return pd.DataFrame(rows)

    def predict_stream(self, context, model_input, params=None):
        question = model_input["question"]
        if "redact" in question:
            yield {"type": "delta", "text": "The secret is "}
            yield {"type": "final", "answer": REFUSAL, "citations": [], "blocked": True, "guard": [],
                   "usage": {"prompt_tokens": 3, "completion_tokens": 4}}
            return
        final = self._final(question, params)
        if not final["blocked"]:
            words = final["answer"].split(" ")
            for number, word in enumerate(words):
                yield {"type": "delta", "text": word if number == len(words) - 1 else word + " "}
        yield {"type": "final", **final}


mlflow.models.set_model(ScriptedServedModel())
