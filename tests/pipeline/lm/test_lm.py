"""The LM factory: LiteLLM strings go to dspy.LM, local/smollm2 runs the bundled GGUF on the CPU."""

import http.server
import threading

import dspy
import pytest
from dspy.lm15 import Message, Response, TextPart, Usage

from pipeline.errors import ConfigError, LMError
from pipeline.lm.embedded import TransformersEngine, load_local_model, smollm2_gguf_path
from pipeline.lm.factory import make_lm
from pipeline.lm.models import SMOLLM2, default_embedded_lm, embedded_model
from pipeline.lm.plain_adapter import PlainAdapter
from signatures import AnswerFromContext


def test_litellm_strings_become_dspy_lms_without_network(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    lm = make_lm("openai/gpt-4.1-mini", max_tokens=50)
    assert isinstance(lm, dspy.LM) and lm.model == "openai/gpt-4.1-mini"
    assert lm.kwargs["max_tokens"] == 50


@pytest.mark.parametrize("name", ["gpt4", "local/llama-3", "/model", "foo/bar"])
def test_bad_model_strings_say_what_to_use(name):
    with pytest.raises(ConfigError) as error:
        make_lm(name)
    assert default_embedded_lm() in str(error.value)


@pytest.mark.parametrize(("model", "variable"), [("openai/gpt-4.1-mini", "OPENAI_API_KEY"), ("anthropic/claude-sonnet-4", "ANTHROPIC_API_KEY")])
def test_a_hosted_model_without_its_key_fails_at_start_up_naming_the_variable(monkeypatch, model, variable):
    monkeypatch.delenv(variable, raising=False)
    with pytest.raises(ConfigError) as error:
        make_lm(model)
    assert variable in str(error.value) and default_embedded_lm() in str(error.value)


def test_an_ollama_model_with_no_ollama_running_names_the_url_and_what_to_do(monkeypatch):
    monkeypatch.setenv("OLLAMA_API_BASE", "http://127.0.0.1:1")
    with pytest.raises(LMError) as error:
        make_lm("ollama_chat/llama3.2")
    assert "http://127.0.0.1:1" in str(error.value) and "ollama serve" in str(error.value)


class _OllamaVersion(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        self.send_response(200 if self.path == "/api/version" else 404)
        self.end_headers()
        self.wfile.write(b'{"version": "0.6.0"}')

    def log_message(self, *args):
        pass


def test_an_ollama_model_is_made_when_its_server_answers(monkeypatch):
    server = http.server.HTTPServer(("127.0.0.1", 0), _OllamaVersion)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("OLLAMA_API_BASE", f"http://127.0.0.1:{server.server_port}")
        assert make_lm("ollama_chat/llama3.2").model == "ollama_chat/llama3.2"
    finally:
        server.shutdown()


def test_embedded_model_file_is_found_without_importing_the_package():
    path = smollm2_gguf_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000


@pytest.mark.slow
def test_embedded_lm_answers_through_predict_reports_usage_and_honours_max_tokens(smollm2):
    with dspy.context(lm=smollm2, adapter=PlainAdapter()):
        prediction = dspy.Predict(AnswerFromContext)(
            context="[1] (ports.md)\nThe admin API listens on port 9180.", question="Which port does the admin API use?"
        )
    assert "9180" in prediction.answer
    usage = smollm2.history[-1]["usage"]
    assert usage["prompt_tokens"] > 20 and 0 < usage["completion_tokens"] <= 32

    short = smollm2.copy(max_tokens=3)
    output = short("Count from one to twenty: one, two,")[0]
    assert short.history[-1]["usage"]["completion_tokens"] <= 3 and len(output.split()) <= 4


@pytest.mark.slow
def test_embedded_model_loads_once_per_process_and_keeps_a_fast_copy(smollm2):
    from pipeline.cpu import resolve_dtype
    from pipeline.lm.embedded import converted_model_dir

    path = str(smollm2_gguf_path())
    smollm2("warm up")
    assert load_local_model(path) is load_local_model(path)
    dtype = resolve_dtype("auto", bf16_ok=embedded_model(SMOLLM2).bf16)
    assert (converted_model_dir(smollm2_gguf_path(), dtype) / "model.safetensors").is_file()


def test_a_looping_completion_is_cut_at_the_first_repeated_line():
    from pipeline.lm.embedded import drop_repeated_lines

    looped = "The answer is:\n\nThe answer is:\n\nThe answer is:\n\nThe answer"
    assert drop_repeated_lines(looped) == "The answer is:"
    assert drop_repeated_lines("Port 9180.\nIt is the admin port.") == "Port 9180.\nIt is the admin port."


@pytest.mark.slow
def test_embedded_lm_stops_at_a_stop_string_and_reports_it_as_finished(smollm2):
    messages = [{"role": "user", "content": "List three colours, one per line."}]
    free = smollm2(messages=messages, max_tokens=32)[0]
    stopped = smollm2(messages=messages, max_tokens=32, stop=["\n"])[0]
    assert "\n" in free.strip() and free.startswith(stopped)
    assert "\n" not in stopped and stopped.strip()
    assert smollm2.history[-1]["response"].finish_reason == "stop"
    assert smollm2.history[-1]["usage"]["completion_tokens"] < 10


def test_a_cached_embedded_answer_is_replayed_only_to_a_run_in_the_same_dtype(monkeypatch, tmp_path):
    """DSPy keys its cache on the request: a float32 answer must not come back from the cache to a bfloat16 run."""
    computed = []

    def complete(self, request):  # what the model would compute, without loading it
        computed.append(self.run_dtype)
        return Response(id=None, model=self.model_name, message=Message.assistant([TextPart(f"answer in {self.run_dtype}")]),
                        finish_reason="stop", usage=Usage(input_tokens=3, output_tokens=3))

    monkeypatch.setattr(TransformersEngine, "complete", complete)
    previous = dspy.cache
    dspy.configure_cache(enable_disk_cache=True, enable_memory_cache=False, disk_cache_dir=str(tmp_path))
    try:
        question = [{"role": "user", "content": "Which port does the API listen on?"}]
        answers = [make_lm("local/smollm2", dtype=dtype)(messages=question)[0]
                   for dtype in ("float32", "float32", "bfloat16", "bfloat16")]
    finally:
        dspy.cache = previous
    assert computed == ["float32", "bfloat16"]  # each dtype computed once, then served from the cache
    assert answers == ["answer in float32", "answer in float32", "answer in bfloat16", "answer in bfloat16"]
