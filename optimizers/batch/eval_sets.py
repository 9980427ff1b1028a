"""Reading the eval set a batch evaluation scores, and checking that it fits the program: QA examples (question,
answer, sources) for a RAG program, agent tasks (question, tools, facts, refuse) for the agent."""

from __future__ import annotations

import json
from pathlib import Path

import dspy

from optimizers.programs import program_spec
from pipeline.errors import EvalSetError

AGENT_FIELDS = ("tools", "facts", "refuse")
SCHEMAS = {"rag": "QA examples (question, answer, sources)",
           "agent": "agent tasks (question, answer, tools, facts, refuse)"}


def eval_set_kind(path: Path, expected: str) -> str:
    """rag or agent, from the fields of the file's first row; `expected` when that row is unreadable (the
    loader then says which line is wrong and why)."""
    if not path.is_file():
        raise EvalSetError(f"Eval set {path} does not exist.")
    if path.suffix.lower() not in (".jsonl", ".json"):
        raise EvalSetError(
            f"{path}: the local engine reads JSONL eval sets (one JSON object a line). For CSV or Parquet questions "
            "use --engine spark."
        )
    with path.open(encoding="utf-8") as handle:
        first = next((line for line in handle if line.strip()), None)
    try:
        row = json.loads(first) if first is not None else None
    except json.JSONDecodeError:
        return expected
    if not isinstance(row, dict):
        return expected
    return "agent" if any(name in row for name in AGENT_FIELDS) else "rag"


def load_eval_set(path: Path, kind: str, *, retriever_only: bool = False) -> list[dspy.Example]:
    """The examples of `path` for a program of `kind`; EvalSetError naming both when the file holds the other
    kind's rows (retriever-only evaluation reads either: it needs question and sources)."""
    found = eval_set_kind(path, kind)
    if found != kind and not retriever_only:
        raise EvalSetError(
            f"{path} holds {SCHEMAS[found]}, but the program is the {kind} program, which is scored on "
            f"{SCHEMAS[kind]}. Give an eval set of that kind, or a model of the other kind."
        )
    examples = program_spec(found).load(path)
    if retriever_only:
        unsourced = [str(example.get("id") or example.question) for example in examples if not example.get("sources")]
        if unsourced:
            raise EvalSetError(
                f"{path}: {len(unsourced)} examples have no gold sources (first: {unsourced[0]}), so retrieval "
                "cannot be scored on them. Give each example its sources, or drop them from the file."
            )
    return examples
