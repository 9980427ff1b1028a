"""scripts/serve.py in front of a real registered Tessera model (the RAG program over its index snapshot, guards
included, the scripted LM), called with the official `openai` client: answers, streams and guard refusals."""

import json
import sys

import mlflow
import openai
import pytest
from http_fixtures import ROOT, free_port, get, start, stop

from tests.pipeline.serving.tessera_models import (
    ADMIN_ANSWER,
    ADMIN_QUESTION,
    DENIED_WORD,
    VAULT_QUESTION,
    registered_model,
    scripted_environment,
)


@pytest.mark.slow
def test_the_served_tessera_model_answers_streams_and_refuses_through_the_openai_client(tmp_path_factory, tmp_path,
                                                                                         mlflow_in_a_temporary_store):
    uri = registered_model(tmp_path_factory)
    name = uri.split("/")[1]
    port = free_port()
    env = {key: value for key, value in scripted_environment(mlflow_in_a_temporary_store).items()
           if not key.startswith("TESSERA_") or key in ("TESSERA_SERVING_LM", "TESSERA_LM")}
    command = [sys.executable, str(ROOT / "scripts" / "serve.py"), "--model", uri, "--port", str(port), "--workers", "2"]
    process = start(command, tmp_path, env, f"http://127.0.0.1:{port}/health")
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        health = json.loads(get(f"http://127.0.0.1:{port}/health")[2])
        raw = client.chat.completions.with_raw_response.create(model=name, messages=[{"role": "user", "content": ADMIN_QUESTION}])
        answer, request_id = raw.parse(), raw.headers["X-Request-Id"]
        chunks = list(client.chat.completions.create(model=name, messages=[{"role": "user", "content": ADMIN_QUESTION}],
                                                     stream=True))
        refused = client.chat.completions.create(model=name, messages=[{"role": "user", "content": VAULT_QUESTION}])
        refused_stream = list(client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": VAULT_QUESTION}], stream=True))
    finally:
        stop(process)

    assert health["model"]["version"] == "1" and health["index_size"] == 2 and health["streaming"] is True
    assert answer.choices[0].message.content == ADMIN_ANSWER and answer.choices[0].finish_reason == "stop"
    assert "admin.md" in answer.model_extra["tessera"]["sources"] and answer.usage.total_tokens > 0
    texts = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]
    assert len(texts) > 3 and "".join(texts) == ADMIN_ANSWER
    assert refused.choices[0].finish_reason == "content_filter" and refused.model_extra["tessera"]["blocked"]
    assert DENIED_WORD not in refused.choices[0].message.content
    final = refused_stream[-1]
    assert final.choices[0].finish_reason == "content_filter" and final.model_extra["tessera"]["blocked"]
    assert DENIED_WORD not in final.model_extra["tessera"]["answer"]
    # The served request was traced to the tracking store, tagged with the request id the client was given.
    [trace] = mlflow.search_traces(locations=["0"], filter_string=f"tag.`tessera.request_id` = '{request_id}'",
                                   return_type="list")
    assert trace.info.tags["tessera.api_key_id"] == "anonymous"
