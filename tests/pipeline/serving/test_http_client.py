"""A real client against a real server: `scripts/serve.py` (2 workers) run as a subprocess on a free loopback port and
called with the official `openai` client and plain HTTP (`mlflow models serve` is tested in test_mlflow_serve.py)."""

import json
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from http_fixtures import ROOT, START_TIMEOUT_S, environment, free_port, get, register_scripted_model, start, stop

from pipeline.serving.keys import add_key
from pipeline.serving.server import listen


@pytest.fixture(scope="module")
def model_uri(tmp_path_factory, mlflow_in_a_temporary_store):
    return register_scripted_model(tmp_path_factory.mktemp("client-model"))


@pytest.fixture(scope="module")
def server(model_uri, tmp_path_factory, mlflow_in_a_temporary_store):
    """scripts/serve.py with two workers, one API key, a 2 s deadline; yields (base URL, key, model name, folder)."""
    folder = tmp_path_factory.mktemp("serve")
    key = add_key(folder / ".tessera" / "api_keys.json", "ci")
    port = free_port()
    env = environment(mlflow_in_a_temporary_store, TESSERA_SERVING__REQUEST_TIMEOUT_S="2", SCRIPTED_HANG_S="3")
    command = [sys.executable, str(ROOT / "scripts" / "serve.py"), "--model", model_uri, "--port", str(port), "--workers", "2"]
    process = start(command, folder, env, f"http://127.0.0.1:{port}/health")
    yield f"http://127.0.0.1:{port}", key, model_uri.split("/")[1].split("@")[0], folder
    assert stop(process) == 0, process.stdout.read()


def test_the_openai_client_gets_an_answer_a_stream_and_eight_concurrent_answers(server):
    base, key, name, _ = server
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)

    single = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "Which port?"}])
    stream = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "Which port?"}], stream=True)
    chunks = list(stream)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": f"Which port, {n}?"}]), range(8)))

    assert single.choices[0].message.content.startswith("The admin API listens on port 8443 [1].")
    assert single.model_extra["tessera"]["citations"] == ["admin.md > Admin API"]
    texts = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]
    assert len(texts) > 5 and "".join(texts) == chunks[-1].model_extra["tessera"]["answer"]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(answer.choices[0].message.content.startswith("The admin API listens") for answer in answers)
    assert len({answer.id for answer in answers}) == 8
    assert [model.id for model in client.models.list()] == [name]


def test_the_openai_client_streams_responses_and_is_refused_without_a_key(server):
    base, key, name, _ = server

    events = list(openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0).responses.create(
        model=name, input=[{"role": "user", "content": "Which port?"}], stream=True))
    with pytest.raises(openai.AuthenticationError, match="not valid"):
        openai.OpenAI(base_url=f"{base}/v1", api_key="tsk-wrong", max_retries=0).models.list()

    assert events[-1].type == "response.completed" and events[-1].response.output_text.startswith("The admin API")
    assert len([event for event in events if event.type == "response.output_text.delta"]) > 5


def test_plain_http_reaches_health_invocations_and_both_workers(server):
    base, key, _, folder = server
    auth = {"Authorization": f"Bearer {key}"}

    status, headers, body = get(f"{base}/invocations", auth, json.dumps({"dataframe_records": [{"question": "Which port?"}]}).encode())
    streamed = get(f"{base}/invocations", auth, json.dumps({"input": [{"role": "user", "content": "Port?"}], "stream": True}).encode())
    workers = {json.loads(get(f"{base}/health")[2])["worker_pid"] for _ in range(60)}

    assert status == 200 and headers["X-Request-Id"].startswith("req_")
    assert json.loads(body)["predictions"][0]["answer"].startswith("The admin API listens on port 8443")
    assert streamed[0] == 200 and b"event: response.completed" in streamed[2]
    assert len(workers) == 2
    usage = [json.loads(line) for line in (folder / ".tessera" / "usage.jsonl").read_text().splitlines()]
    assert {line["request_id"] for line in usage} >= {headers["X-Request-Id"]}
    assert all(line["api_key_id"] == "ci" for line in usage if line["status"] != 401)


def test_bad_requests_over_the_wire_get_json_errors_and_the_server_keeps_serving(server):
    base, key, name, _ = server
    auth = {"Authorization": f"Bearer {key}"}
    chat = f"{base}/v1/chat/completions"

    def ask(content, **fields):
        return get(chat, auth, json.dumps({"model": name, "messages": [{"role": "user", "content": content}], **fields}).encode())

    sent = {
        "malformed": get(chat, auth, b'{"model": '),
        "schema": get(chat, auth, json.dumps({"model": name, "messages": {"role": "user"}}).encode()),
        "empty": ask(""),
        "not text": ask(["a", "b"]),
        "2 MB": ask("x" * 2_000_000),
        "unknown model": get(chat, auth, json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}).encode()),
        "no key": get(chat, None, json.dumps({"model": name, "messages": [{"role": "user", "content": "x"}]}).encode()),
        "blocked": ask("the forbidden question"),
        "LM raises": ask("explode"),
        "LM hangs": ask("hang"),
    }

    statuses = {what: status for what, (status, _, _) in sent.items()}
    assert statuses == {"malformed": 400, "schema": 400, "empty": 400, "not text": 400, "2 MB": 413, "unknown model": 404,
                        "no key": 401, "blocked": 200, "LM raises": 502, "LM hangs": 504}
    for what, (status, _, body) in sent.items():
        answer = json.loads(body)
        assert "Traceback" not in body.decode() and (status == 200 or answer["error"]["message"]), what
    assert json.loads(sent["blocked"][2])["tessera"]["blocked"] is True
    status, _, body = ask("Which port?")
    assert status == 200 and "8443" in json.loads(body)["choices"][0]["message"]["content"]


def test_a_model_that_cannot_load_stops_the_server_with_the_reason(tmp_path, mlflow_in_a_temporary_store):
    uri = register_scripted_model(tmp_path / "broken", passages="this is not JSON")
    command = [sys.executable, str(ROOT / "scripts" / "serve.py"), "--model", uri, "--port", str(free_port()), "--workers", "2"]

    finished = subprocess.run(command, check=False, cwd=tmp_path, env=environment(mlflow_in_a_temporary_store), capture_output=True,
                              text=True, timeout=START_TIMEOUT_S)

    assert finished.returncode == 2, finished.stderr
    assert "error: A serving worker could not load the model: JSONDecodeError" in finished.stderr


def test_connections_to_the_listening_socket_send_without_waiting_for_acks():
    """Nagle's algorithm on a served connection makes each keep-alive answer wait ~40 ms for a delayed ACK."""
    import asyncio

    async def accepted_nodelay() -> int:
        seen = asyncio.get_running_loop().create_future()

        class Report(asyncio.Protocol):
            def connection_made(self, transport):
                seen.set_result(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        sock = listen("127.0.0.1", 0)
        server = await asyncio.get_running_loop().create_server(Report, sock=sock)
        with socket.create_connection(sock.getsockname()):
            value = await asyncio.wait_for(seen, 5)
        server.close()
        return value

    assert asyncio.run(accepted_nodelay()) == 1
