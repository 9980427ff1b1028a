"""Load the agent eval set (JSONL: question, answer, facts, tools, calls, refuse, sources) as DSPy examples.

Each example also carries its first expected call as `tool` and `arguments`, the selector's output fields, so a
labelled example is a usable selector demo (BootstrapFewShot's labelled demos), not one the adapter must skip.
"""

from __future__ import annotations

import json
from pathlib import Path

import dspy

from pipeline.errors import EvalSetError

AGENT_TASKS_FILE = "agent.jsonl"
_LISTS = ("facts", "tools", "calls", "sources")


def bundled_agent_tasks() -> Path:
    from pipeline.qa_set import bundled_path

    return bundled_path(AGENT_TASKS_FILE)


def check_agent_row(path: Path, number: int, row: object) -> dict:
    """Validate one line, naming the file and line in the error."""
    where = f"{path}, line {number}"
    if not isinstance(row, dict):
        raise EvalSetError(f"{where}: a task is a JSON object with question, answer, facts, tools, calls and refuse.")
    missing = [name for name in ("question", "answer") if not isinstance(row.get(name), str) or not row[name].strip()]
    missing += [name for name in _LISTS if not isinstance(row.get(name, []), list)]
    if not isinstance(row.get("refuse", False), bool):
        missing.append("refuse (true or false)")
    if missing:
        raise EvalSetError(f"{where}: missing or malformed {', '.join(missing)}.")
    calls = row.get("calls", [])
    if any(not isinstance(c, dict) or not isinstance(c.get("tool"), str) or not isinstance(c.get("arguments", {}), dict)
           for c in calls):
        raise EvalSetError(f"{where}: each call is {{\"tool\": name, \"arguments\": {{...}}}}.")
    if [c["tool"] for c in calls] != row.get("tools", [c["tool"] for c in calls]):
        raise EvalSetError(f"{where}: 'tools' must list the tools of 'calls', in order.")
    return row


def load_agent_tasks(path: str | Path | None = None) -> list[dspy.Example]:
    """The agent tasks as `dspy.Example`s with `question` as the input."""
    path = Path(path) if path is not None else bundled_agent_tasks()
    if not path.is_file():
        raise EvalSetError(f"Agent eval set {path} does not exist.")
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = check_agent_row(path, number, json.loads(line))
        except json.JSONDecodeError as exc:
            raise EvalSetError(f"{path}, line {number}: not valid JSON ({exc.msg}).") from None
        calls = row.get("calls", [])
        first = calls[0] if calls else {"tool": "answer", "arguments": {}}
        examples.append(dspy.Example(
            id=row.get("id"), kind=row.get("kind", ""), question=row["question"], answer=row["answer"],
            facts=list(row.get("facts", [])), tools=[c["tool"] for c in calls], calls=calls,
            refuse=bool(row.get("refuse", False)), sources=list(row.get("sources", [])),
            tool=first["tool"], arguments=json.dumps(first.get("arguments", {}), ensure_ascii=False),
        ).with_inputs("question"))
    if not examples:
        raise EvalSetError(f"Agent eval set {path} holds no tasks.")
    return examples
