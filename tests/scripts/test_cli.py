"""The command-line entry points: one clear message and a non-zero exit on bad input, never a traceback.

One test per script runs the real command in a subprocess; the rest run the script's `main` in this process.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.store import open_store

ROOT = Path(__file__).resolve().parents[2]


def run(*args, cwd, stdin=None, timeout=300):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_") or k == "TESSERA_LM"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=timeout
    )


def assert_clean_failure(result, *fragments):
    code, _, err = result
    assert code == 2, err
    for fragment in fragments:
        assert fragment in err
    return err


def docs_folder(tmp_path, text="# A\n\ntext about keys\n"):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text(text)
    return docs


# -- the real commands -----------------------------------------------------------------------------------------


def test_ingest_command_indexes_a_folder(tmp_path):
    result = run(str(ROOT / "scripts/ingest.py"), str(docs_folder(tmp_path)), "--store", str(tmp_path / "s"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1 indexed" in result.stdout and "0 failed" in result.stdout


def test_query_command_reads_a_long_question_from_stdin_and_the_size_guard_refuses_it(tmp_path, script):
    store = str(tmp_path / "s")
    assert script("ingest.py", str(docs_folder(tmp_path)), "--store", store)[0] == 0
    result = run(str(ROOT / "scripts/query.py"), "-", "--store", store, cwd=tmp_path, stdin="x" * 100_000)
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert "blocked: size" in result.stdout and "100000 characters" in result.stderr


@pytest.mark.slow
def test_ingest_then_query_prints_answer_sources_and_stage_times(tmp_path):
    store = str(tmp_path / "s")
    docs = ROOT / "eval_sets/corpus/security"
    ingested = run(str(ROOT / "scripts/ingest.py"), str(docs), "--collection", "sec", "--store", store, cwd=tmp_path)
    assert ingested.returncode == 0, ingested.stderr
    assert "indexed" in ingested.stdout and "0 failed" in ingested.stdout
    again = run(str(ROOT / "scripts/ingest.py"), str(docs), "--collection", "sec", "--store", store, cwd=tmp_path)
    assert "0 indexed" in again.stdout and "0 chunks written" in again.stdout
    answered = run(
        str(ROOT / "scripts/query.py"), "How do I rotate the API keys?", "--collection", "sec", "--store", store, cwd=tmp_path
    )
    assert answered.returncode == 0, answered.stderr
    out = answered.stdout
    assert "sources:" in out and "api-keys" in out and "chunk " in out
    assert "retrieve" in out and "rerank" in out and "generate" in out


# -- bad input, in process -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stdin", [None, "  \n"])
def test_query_rejects_an_empty_question(tmp_path, script, stdin):
    question = "-" if stdin is not None else "  "
    result = script("query.py", question, "--store", str(tmp_path / "s"), stdin=stdin)
    assert_clean_failure(result, "question is empty")


def test_query_on_a_collection_that_does_not_exist_says_how_to_create_it(tmp_path, script):
    result = script("query.py", "How?", "--collection", "nope", "--store", str(tmp_path / "s"))
    assert_clean_failure(result, "'nope' does not exist", "scripts/ingest.py")


def test_ingest_of_a_missing_folder_fails_clearly(tmp_path, script):
    result = script("ingest.py", str(tmp_path / "missing"), "--store", str(tmp_path / "s"))
    assert_clean_failure(result, "does not exist")


def test_ingest_into_a_store_locked_by_another_process_fails_clearly(tmp_path, script):
    docs = docs_folder(tmp_path)
    with open_store(path=tmp_path / "s"):
        result = script("ingest.py", str(docs), "--store", str(tmp_path / "s"))
    assert_clean_failure(result, "in use by another process")


def test_invalid_config_fails_at_start_up(tmp_path, script):
    (tmp_path / "tessera.yaml").write_text("retrieval:\n  mode: fuzzy\n")
    assert_clean_failure(script("query.py", "How?"), "retrieval.mode")


def test_config_naming_a_folder_fails_at_start_up(tmp_path, script):
    assert_clean_failure(script("query.py", "How?", "--config", str(tmp_path)), "is a folder")


@pytest.mark.parametrize("name", ["query.py", "ingest.py"])
def test_a_bad_deny_list_regex_stops_every_command_at_start_up(tmp_path, script, name):
    (tmp_path / "tessera.yaml").write_text("guards:\n  deny_list:\n    patterns: ['(unclosed']\n")
    args = ["How?"] if name == "query.py" else [str(docs_folder(tmp_path))]
    assert_clean_failure(script(name, *args, "--store", str(tmp_path / "s")), "guards.deny_list.patterns", "(unclosed")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("TESSERA_GUARDS__DENY_LIST__KEYWORDS", "foo", """TESSERA_GUARDS__DENY_LIST__KEYWORDS='["foo"]'"""),
        ("TESSERA_LM", "foo/bar", "LiteLLM knows no provider 'foo'"),
    ],
)
def test_bad_environment_variables_fail_at_start_up(tmp_path, script, monkeypatch, variable, value, expected):
    monkeypatch.setenv(variable, value)
    assert_clean_failure(script("query.py", "How?", "--store", str(tmp_path / "s")), expected)


def test_a_hosted_lm_without_its_key_fails_before_anything_loads(tmp_path, script, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("TESSERA_LM", "openai/gpt-4.1-mini")
    assert_clean_failure(script("query.py", "How?", "--store", str(tmp_path / "s")), "OPENAI_API_KEY")


def test_an_ollama_lm_with_no_ollama_running_names_the_url(tmp_path, script, monkeypatch):
    monkeypatch.setenv("OLLAMA_API_BASE", "http://127.0.0.1:1")
    result = script("query.py", "How?", "--lm", "ollama_chat/llama3.2", "--store", str(tmp_path / "s"))
    assert_clean_failure(result, "http://127.0.0.1:1", "ollama serve")


@pytest.mark.parametrize("name", ["query.py", "ingest.py"])
def test_a_qdrant_server_that_does_not_answer_is_named(tmp_path, script, monkeypatch, name):
    monkeypatch.setenv("TESSERA_STORE__URL", "http://127.0.0.1:1")
    args = ["How?"] if name == "query.py" else [str(docs_folder(tmp_path))]
    assert_clean_failure(script(name, *args), "http://127.0.0.1:1")
