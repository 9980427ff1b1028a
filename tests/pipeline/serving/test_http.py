"""The front doors in process: OpenAI Chat Completions and Responses, /invocations, /health, bad input as JSON
errors, API keys, rate limits and the usage log, over the scripted served model."""

import json
from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest
from http_fixtures import register_scripted_model
from starlette.testclient import TestClient

from pipeline.serving import keys as keys_module
from pipeline.serving.http import create_app
from pipeline.serving.keys import RateLimiter, add_key, revoke_key
from pipeline.serving.served import ModelInfo, ServedModel
from pipeline.serving.settings import ServingSettings

QUESTION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Which port does the admin API use?"}]


@pytest.fixture(scope="module")
def served(tmp_path_factory, mlflow_in_a_temporary_store):
    uri = register_scripted_model(tmp_path_factory.mktemp("http"))
    return ServedModel.load(uri, tmp_path_factory.mktemp("copy"))


@pytest.fixture
def serve(served, tmp_path):
    """A client of a fresh app over the served model; settings overrides as keyword arguments."""

    def make(**overrides):
        settings = ServingSettings(api_keys_file=tmp_path / "keys.json", usage_log=tmp_path / "usage.jsonl", **overrides)
        return TestClient(create_app(served, settings))

    return make


def usage_lines(tmp_path):
    return [json.loads(line) for line in (tmp_path / "usage.jsonl").read_text().splitlines()]


def events(response):
    """The JSON payloads of a server-sent event stream, and whether it ended with [DONE]."""
    payloads = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    done = bool(payloads) and payloads[-1] == "[DONE]"
    return [json.loads(payload) for payload in payloads if payload != "[DONE]"], done


def test_a_chat_completion_answers_with_citations_and_the_request_id(serve, served, tmp_path):
    client = serve()

    response = client.post("/v1/chat/completions", json={"model": served.info.name, "messages": QUESTION, "temperature": 0})

    assert response.status_code == 200
    body = response.json()
    request_id = response.headers["X-Request-Id"]
    assert body["object"] == "chat.completion" and body["model"] == served.info.name
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    # The scripted model echoes the params it was given: the server passed the request id and key id for tracing.
    assert choice["message"]["content"] == f"The admin API listens on port 8443 [1]. [request {request_id} key anonymous]"
    assert body["tessera"]["citations"] == ["admin.md > Admin API"] and body["tessera"]["blocked"] is False
    assert body["tessera"]["request_id"] == request_id and body["tessera"]["model_version"] == "1"
    assert body["usage"] == {"prompt_tokens": 17, "completion_tokens": 9, "total_tokens": 26}
    [line] = usage_lines(tmp_path)
    assert (line["request_id"], line["api_key_id"], line["status"], line["prompt_tokens"]) == (request_id, "anonymous", 200, 17)


def test_a_streamed_chat_completion_arrives_in_chunks_that_add_up_to_the_answer(serve, served):
    client = serve()
    asked = {"model": served.info.name, "messages": QUESTION, "stream": True, "stream_options": {"include_usage": True}}

    with client.stream("POST", "/v1/chat/completions", json=asked) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks, done = events(response)

    assert done and all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    texts = [chunk["choices"][0]["delta"].get("content") for chunk in chunks if chunk["choices"]]
    assert len([text for text in texts if text]) > 5
    final = next(chunk for chunk in chunks if chunk["choices"] and chunk["choices"][0]["finish_reason"])
    assert final["choices"][0]["finish_reason"] == "stop"
    assert "".join(text or "" for text in texts) == final["tessera"]["answer"]
    assert final["tessera"]["citations"] == ["admin.md > Admin API"] and not final["tessera"]["replaced"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 9


def test_a_blocked_prompt_is_a_200_with_the_refusal_as_a_content_filter_does(serve, served):
    client = serve()
    asked = {"model": served.info.name, "messages": [{"role": "user", "content": "tell me the forbidden thing"}]}

    body = client.post("/v1/chat/completions", json=asked).json()
    with client.stream("POST", "/v1/chat/completions", json={**asked, "stream": True}) as response:
        chunks, done = events(response)

    assert body["choices"][0]["finish_reason"] == "content_filter"
    assert body["choices"][0]["message"]["content"] == "blocked: policy" and body["tessera"]["blocked"] is True
    final = chunks[-1]
    assert done and final["choices"][0]["finish_reason"] == "content_filter" and final["tessera"]["blocked"]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "blocked: policy"


def test_a_streamed_answer_the_output_guard_replaces_ends_with_the_refusal_and_says_so(serve, served):
    client = serve()
    asked = {"model": served.info.name, "messages": [{"role": "user", "content": "redact this"}], "stream": True}

    with client.stream("POST", "/v1/chat/completions", json=asked) as response:
        chunks, done = events(response)

    final = chunks[-1]
    assert done and final["choices"][0]["finish_reason"] == "content_filter"
    assert final["tessera"] == {**final["tessera"], "answer": "blocked: policy", "blocked": True, "replaced": True}
    assert chunks[-2]["choices"][0]["delta"]["content"].endswith("blocked: policy")


def test_responses_input_answers_on_v1_responses_and_on_invocations(serve, served):
    client = serve()

    for path in ("/v1/responses", "/invocations"):
        body = client.post(path, json={"input": [{"role": "user", "content": "Which port?"}]}).json()
        assert body["object"] == "response" and body["status"] == "completed"
        [message] = body["output"]
        assert message["content"][0]["text"].startswith("The admin API listens on port 8443")
        assert body["tessera"]["citations"] == ["admin.md > Admin API"]


def test_a_streamed_responses_answer_sends_text_deltas_then_completed(serve, served):
    client = serve()

    with client.stream("POST", "/invocations", json={"input": [{"role": "user", "content": "Which port?"}], "stream": True}) as response:
        sent, _ = events(response)

    kinds = [event["type"] for event in sent]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"]
    deltas = [event["delta"] for event in sent if event["type"] == "response.output_text.delta"]
    assert len(deltas) > 5 and "".join(deltas) == sent[-1]["response"]["output"][0]["content"][0]["text"]
    assert [event["sequence_number"] for event in sent] == list(range(len(sent)))


def test_invocations_takes_mlflow_dataframe_records_too(serve):
    client = serve()

    body = client.post("/invocations", json={"dataframe_records": [{"question": "a?"}, {"question": "b?"}]}).json()

    assert [row["answer"][:34] for row in body["predictions"]] == ["The admin API listens on port 8443"] * 2
    assert body["predictions"][0]["citations"] == ["admin.md > Admin API"]


def test_models_and_health_describe_the_served_version(serve, served):
    client = serve()

    models = client.get("/v1/models").json()
    health = client.get("/health").json()

    assert [model["id"] for model in models["data"]] == [served.info.name]
    assert client.get(f"/v1/models/{served.info.name}").json()["tessera"] == {"version": "1", "alias": "champion"}
    assert health["status"] == "ok" and health["model"]["version"] == "1" and health["model"]["alias"] == "champion"
    assert health["uptime_s"] >= 0 and health["streaming"] is True


BAD = [
    ("post", "/v1/chat/completions", b'{"model": "M", "messages": [', 400, "not valid JSON"),
    ("post", "/v1/chat/completions", {"model": "M", "messages": "hello"}, 400, "messages: Input should be a valid list"),
    ("post", "/v1/chat/completions", {"model": "M"}, 400, "messages: Field required"),
    ("post", "/v1/chat/completions", {"model": "M", "messages": [{"role": "user", "content": "  "}]}, 400, "messages[0].content is empty"),
    ("post", "/v1/chat/completions", {"model": "M", "messages": [{"role": "user", "content": 123}]}, 400, "valid string"),
    ("post", "/v1/chat/completions", {"model": "M", "messages": [{"role": "system", "content": "hi"}]}, 400, "no message with role 'user'"),
    ("post", "/v1/chat/completions", {"model": "M", "messages": [{"role": "user", "content": "x" * 2_000_000}]}, 413, "larger than 1,000,000 bytes"),
    ("post", "/v1/chat/completions", {"model": "gpt-4o", "messages": QUESTION}, 404, "The model 'gpt-4o' does not exist here"),
    ("post", "/v1/chat/completions", {"model": "M", "messages": [{"role": "user", "content": "explode"}]}, 502, "the scripted LM is down"),
    ("post", "/v1/chat/completions", {"model": "M", "messages": [{"role": "user", "content": "hang"}]}, 504, "did not answer within 0.5 s"),
    ("post", "/v1/chat/completions", {"model": "M", "stream": True, "messages": [{"role": "user", "content": "explode"}]}, 502, "scripted LM is down"),
    ("post", "/v1/responses", {"input": []}, 400, "input has no messages"),
    ("post", "/v1/responses", [1, 2], 400, "must be a JSON object"),
    ("post", "/invocations", {"input": [{"role": "user", "content": ""}]}, 400, "input[0].content is empty"),
    ("post", "/invocations", {"records": [{"question": "x"}]}, 400, "dataframe_split"),
    ("post", "/invocations", b"[[[[" * 5000 + b"]]]]" * 5000, 400, "not valid JSON"),
    ("post", "/v1/completions", {"prompt": "x"}, 404, "No route POST /v1/completions"),
    ("get", "/v1/chat/completions", None, 405, "No route GET /v1/chat/completions"),
]


def test_each_bad_request_gets_its_status_and_a_json_error_and_the_server_keeps_serving(serve, served, monkeypatch):
    monkeypatch.setenv("SCRIPTED_HANG_S", "1.5")
    client = serve(request_timeout_s=0.5)

    for method, path, body, status, says in BAD:
        if isinstance(body, bytes):
            response = client.request(method, path, content=body, headers={"content-type": "application/json"})
        else:
            body = json.loads(json.dumps(body).replace('"M"', json.dumps(served.info.name))) if body is not None else None
            response = client.request(method, path, json=body)
        assert response.status_code == status, (path, body if not isinstance(body, bytes) else body[:40], response.text)
        error = response.json()
        message = error["message"] if path == "/invocations" else error["error"]["message"]
        assert says in message, (says, message)
        assert "Traceback" not in response.text and 'File "' not in response.text
        assert response.headers["X-Request-Id"].startswith("req_")

    good = client.post("/v1/chat/completions", json={"model": served.info.name, "messages": QUESTION})
    assert good.status_code == 200 and "8443" in good.json()["choices"][0]["message"]["content"]


def test_with_keys_configured_a_request_needs_a_valid_key(serve, served, tmp_path, monkeypatch):
    monkeypatch.setattr(keys_module, "RELOAD_EVERY_S", 0.0)
    key = add_key(tmp_path / "keys.json", "alice")
    client = serve()
    asked = {"model": served.info.name, "messages": QUESTION}

    missing = client.post("/v1/chat/completions", json=asked)
    wrong = client.post("/v1/chat/completions", json=asked, headers={"Authorization": "Bearer tsk-not-a-key"})
    right = client.post("/v1/chat/completions", json=asked, headers={"Authorization": f"Bearer {key}"})

    assert missing.status_code == wrong.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer" and "--add-key" in missing.json()["error"]["message"]
    assert right.status_code == 200 and "key alice]" in right.json()["choices"][0]["message"]["content"]
    assert key not in (tmp_path / "keys.json").read_text()
    assert client.get("/health").status_code == 200  # health stays open for load balancers
    revoke_key(tmp_path / "keys.json", "alice")
    add_key(tmp_path / "keys.json", "bob")
    assert client.post("/v1/chat/completions", json=asked, headers={"Authorization": f"Bearer {key}"}).status_code == 401
    revoke_key(tmp_path / "keys.json", "bob")
    # With every key revoked the server stays locked: it does not fall back to serving anyone.
    assert client.post("/v1/chat/completions", json=asked).status_code == 401
    assert [line["api_key_id"] for line in usage_lines(tmp_path)] == ["anonymous", "anonymous", "alice", "anonymous", "anonymous"]


def test_a_key_over_its_limit_gets_429_with_retry_after_and_other_keys_do_not(serve, served, tmp_path):
    alice = add_key(tmp_path / "keys.json", "alice")
    bob = add_key(tmp_path / "keys.json", "bob", rate_limit_rpm=5)
    client = serve(rate_limit_rpm=2)
    asked = {"model": served.info.name, "messages": QUESTION}

    def ask(key):
        return client.post("/v1/chat/completions", json=asked, headers={"Authorization": f"Bearer {key}"})

    alices = [ask(alice) for _ in range(3)]
    bobs = [ask(bob) for _ in range(5)]

    assert [r.status_code for r in alices] == [200, 200, 429]
    assert 25 <= int(alices[2].headers["Retry-After"]) <= 30
    assert alices[2].json()["error"]["code"] == "rate_limit_exceeded"
    assert [r.status_code for r in bobs] == [200] * 5


def test_the_limit_is_shared_by_workers_and_refills_at_rpm_over_sixty_seconds(tmp_path):
    first, second = RateLimiter(tmp_path / "limits.sqlite"), RateLimiter(tmp_path / "limits.sqlite")

    answers = [limiter.admit("alice", 3, now=1000.0) for limiter in (first, second, first, second)]

    assert answers[:3] == [None, None, None] and answers[3] == pytest.approx(20.0)
    assert second.admit("alice", 3, now=1019.0) == pytest.approx(1.0)
    assert first.admit("alice", 3, now=1020.0) is None
    assert first.admit("bob", 3, now=1000.0) is None


def test_the_usage_log_prices_lm_tokens_per_key_for_plain_and_streamed_requests(serve, served, tmp_path):
    key = add_key(tmp_path / "keys.json", "alice")
    client = serve(prompt_price_per_1k=1.0, completion_price_per_1k=2.0)
    headers = {"Authorization": f"Bearer {key}"}
    asked = {"model": served.info.name, "messages": QUESTION}

    client.post("/v1/chat/completions", json=asked, headers=headers)
    with client.stream("POST", "/v1/chat/completions", json={**asked, "stream": True}, headers=headers) as response:
        events(response)

    plain, streamed = usage_lines(tmp_path)
    assert (plain["stream"], streamed["stream"]) == (False, True)
    for line in (plain, streamed):
        assert line["api_key_id"] == "alice" and line["status"] == 200 and line["model"] == served.info.name
        assert (line["prompt_tokens"], line["completion_tokens"]) == (17, 9)
        assert line["cost_usd"] == pytest.approx((17 * 1.0 + 9 * 2.0) / 1000)
        assert line["latency_ms"] > 0


class AnswersOnly:
    """A pyfunc model as MLflow loads one without predict_stream: its stream is its whole answer as one delta."""

    metadata = SimpleNamespace(get_params_schema=lambda: None)

    def unwrap_python_model(self):
        return mlflow.pyfunc.PythonModel()  # predict_stream not overridden

    def predict(self, frame, params=None):
        return pd.DataFrame({"answer": [f"Echo: {frame['question'][0]}"], "citations": [["a.md"]], "blocked": [False]})


def test_a_model_without_predict_stream_streams_its_answer_as_one_delta(tmp_path):
    served = ServedModel(AnswersOnly(), ModelInfo("models:/echo/3", "echo", "3", None))
    client = TestClient(create_app(served, ServingSettings(api_keys_file=tmp_path / "k.json", usage_log=None)))
    asked = {"model": "echo", "stream": True, "messages": [{"role": "user", "content": "hi"}]}

    with client.stream("POST", "/v1/chat/completions", json=asked) as response:
        chunks, done = events(response)

    contents = [c["choices"][0]["delta"]["content"] for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert done and not served.streams and contents == ["Echo: hi"]
    assert chunks[-1]["tessera"]["citations"] == ["a.md"] and chunks[-1]["choices"][0]["finish_reason"] == "stop"
