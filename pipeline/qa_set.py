"""Load a QA eval set (JSONL: question, answer, sources) as DSPy examples, through `datasets`."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import dspy

from pipeline.errors import EvalSetError

REQUIRED_FIELDS = ("question", "answer", "sources")


def bundled_path(name: str) -> Path:
    """A file or folder shipped in the `eval_sets` package (`qa.jsonl`, `safety.jsonl`, `corpus`), wherever
    Tessera is installed."""
    # setuptools installs packages unpacked, so the resource is a real path on disk that folders can be walked in.
    path = Path(str(resources.files("eval_sets").joinpath(name)))
    if not path.exists():
        raise EvalSetError(f"Tessera's bundled eval sets hold no {name!r}. Reinstall Tessera (pip install .).")
    return path


DEMO_CORPUS = bundled_path("corpus")
DEMO_QA = bundled_path("qa.jsonl")


def check_qa_file(path: Path) -> int:
    """Validate every line before loading, so an error names the file and the line."""
    if not path.is_file():
        raise EvalSetError(f"Eval set {path} does not exist.")
    rows = 0
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvalSetError(f"{path}, line {number}: not valid JSON ({exc.msg}).") from exc
            missing = [name for name in REQUIRED_FIELDS if not row.get(name)] if isinstance(row, dict) else REQUIRED_FIELDS
            if missing:
                raise EvalSetError(f"{path}, line {number}: missing {', '.join(missing)} (each line needs {', '.join(REQUIRED_FIELDS)}).")
            if not isinstance(row["sources"], list):
                raise EvalSetError(f"{path}, line {number}: 'sources' must be a list of document paths.")
            rows += 1
    if rows == 0:
        raise EvalSetError(f"Eval set {path} holds no rows.")
    return rows


def load_qa(path: str | Path = DEMO_QA) -> list[dspy.Example]:
    """The eval set as `dspy.Example`s with `question` as the input."""
    from datasets import load_dataset

    path = Path(path)
    check_qa_file(path)
    dataset = load_dataset("json", data_files=str(path), split="train")
    return [
        dspy.Example(id=row.get("id"), question=row["question"], answer=row["answer"], sources=list(row["sources"])).with_inputs("question")
        for row in dataset
    ]
