"""The bundled eval sets and corpus ship inside the package and are found without the source tree."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipeline.errors import EvalSetError
from pipeline.qa_set import DEMO_CORPUS, DEMO_QA, bundled_path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "pipeline", "signatures", "optimizers", "guardrails", "eval_sets")


def test_the_bundled_files_are_found_through_one_function():
    assert DEMO_QA == bundled_path("qa.jsonl") and DEMO_QA.is_file()
    assert DEMO_CORPUS == bundled_path("corpus") and any(DEMO_CORPUS.rglob("*.md"))
    assert bundled_path("safety.jsonl").is_file()
    with pytest.raises(EvalSetError, match="no 'nope.jsonl'"):
        bundled_path("nope.jsonl")


def test_a_built_wheel_carries_the_eval_sets_and_finds_them_when_installed(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist")],
        cwd=source, capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stderr
    wheel = zipfile.ZipFile(next((tmp_path / "dist").glob("*.whl")))
    names = set(wheel.namelist())
    corpus = {path.relative_to(ROOT).as_posix() for path in DEMO_CORPUS.rglob("*.md")}
    assert {"eval_sets/qa.jsonl", "eval_sets/safety.jsonl"} <= names and corpus <= names

    # Unpacked, a wheel is what `pip install .` puts in site-packages; it comes first on the path, so the
    # source tree's editable install is not what answers.
    site = tmp_path / "site"
    wheel.extractall(site)
    found = subprocess.run(
        [sys.executable, "-c", "from pipeline.qa_set import DEMO_CORPUS, DEMO_QA; print(DEMO_QA); print(len(list(DEMO_CORPUS.rglob('*.md'))))"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True, text=True, timeout=120,
    )
    assert found.returncode == 0, found.stderr
    qa_path, corpus_files = found.stdout.split()
    assert Path(qa_path) == site / "eval_sets" / "qa.jsonl" and int(corpus_files) == len(corpus)
