"""The command-line entry points: one clear message and a non-zero exit on bad input, never a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.store.factory import open_store

ROOT = Path(__file__).resolve().parents[2]


def run(*args, cwd, timeout=300):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def assert_clean_failure(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def test_query_rejects_an_empty_question(tmp_path):
    result = run(str(ROOT / "scripts/query.py"), "  ", "--store", str(tmp_path / "s"), cwd=tmp_path)
    assert_clean_failure(result, "question is empty")


def test_a_huge_question_is_refused_by_the_size_guard(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\ntext about keys\n")
    store = str(tmp_path / "s")
    assert run(str(ROOT / "scripts/ingest.py"), str(docs), "--store", store, cwd=tmp_path).returncode == 0
    result = run(str(ROOT / "scripts/query.py"), "x" * 100_000, "--store", store, cwd=tmp_path)
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert "blocked: size" in result.stdout and "100000 characters" in result.stderr


def test_query_on_a_collection_that_does_not_exist_says_how_to_create_it(tmp_path):
    result = run(str(ROOT / "scripts/query.py"), "How?", "--collection", "nope", "--store", str(tmp_path / "s"), cwd=tmp_path)
    assert_clean_failure(result, "'nope' does not exist", "scripts/ingest.py")


def test_ingest_of_a_missing_folder_fails_clearly(tmp_path):
    result = run(str(ROOT / "scripts/ingest.py"), str(tmp_path / "missing"), "--store", str(tmp_path / "s"), cwd=tmp_path)
    assert_clean_failure(result, "does not exist")


def test_ingest_into_a_store_locked_by_another_process_fails_clearly(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\ntext\n")
    with open_store(path=tmp_path / "s"):
        result = run(str(ROOT / "scripts/ingest.py"), str(docs), "--store", str(tmp_path / "s"), cwd=tmp_path)
    assert_clean_failure(result, "in use by another process")


def test_invalid_config_fails_at_start_up(tmp_path):
    (tmp_path / "tessera.yaml").write_text("retrieval:\n  mode: fuzzy\n")
    result = run(str(ROOT / "scripts/query.py"), "How?", cwd=tmp_path)
    assert_clean_failure(result, "retrieval.mode")


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
