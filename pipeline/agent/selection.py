"""Turn what the selector wrote into a step the loop can take: an allowed tool with arguments, an answer, or a
message that tells the selector what to fix.

A small LM writes tool names loosely ("Calculator()", "`search-documents`") and arguments in many shapes (JSON,
a Python dict, `key: value`, a bare expression, a JSON object missing its closing brace); all of these are read. A
name that matches no allowed tool is never run: the selector gets the list of allowed tools back.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.agent.state import Step
from pipeline.tools.base import Tool, ToolArgumentError
from pipeline.tools.registry import ToolRegistry

ANSWER_WORDS = frozenset({"answer", "finish", "final", "final answer", "final_answer", "done", "respond", "none", "stop"})
NO_STEPS = "(none yet)"

_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_PAIR = re.compile(r"""^\s*["']?(\w+)["']?\s*[:=]\s*(.+?)\s*$""")
_CALL = re.compile(r"^\s*[\w\-. `'\"]+\((.*)\)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Choice:
    """The selector's decision: `tool` None means answer now; `error` is a corrective message instead of a call."""

    tool: str | None
    arguments: Any = None
    error: str | None = None


def choose(registry: ToolRegistry, tool_text: object, arguments_text: object) -> Choice:
    """Read the selector's `tool` and `arguments` fields against the allowed tools."""
    lines = [line for line in str(tool_text or "").splitlines() if line.strip()]
    first = " ".join(lines[0].split()) if lines else ""
    if not first or first.strip(" .:`'\"*").lower() in ANSWER_WORDS:
        return Choice(None)
    name = registry.resolve(first)
    if name is None:
        # "calculator: 2*3" or "Use the calculator": look for an allowed name as a word of the text.
        words = set(re.findall(r"[a-z][a-z0-9_]*", first.lower()))
        found = [allowed for allowed in registry.names() if allowed in words]
        name = found[0] if len(found) == 1 else None
    if name is None:
        return Choice(None, error=f"error: there is no tool {first[:60]!r}. Choose one of: {', '.join(registry.names())}, "
                                  "or answer.")
    tool = registry.get(name)
    arguments = parse_arguments(arguments_text, tool)
    if arguments in (None, "", {}) and (inline := _CALL.match(first)):
        arguments = parse_arguments(inline.group(1), tool)
    try:
        tool.bind(arguments)
    except ToolArgumentError as exc:
        return Choice(name, arguments, error=f"error: {exc}. Arguments for {tool.signature_text()}")
    return Choice(name, arguments)


def parse_arguments(text: object, tool: Tool) -> Any:
    """The arguments as a dict where any reading gives one, else the bare text (bound to a tool's only required
    parameter by `Tool.bind`)."""
    if isinstance(text, Mapping):
        return dict(text)
    value = _FENCE.sub("", str(text or "").strip()).strip()
    if value.lower() in ("", "{}", "none", "null", "(none)", "n/a"):
        return {}
    if value.startswith("{"):
        for candidate in (_balanced(value), value, value + "}"):
            parsed = _as_dict(candidate)
            if parsed is not None:
                return parsed
    names = {p.name for p in tool.parameters}
    pairs = [_PAIR.match(part) for part in re.split(r"[,\n]\s*(?=[\"']?\w+[\"']?\s*[:=])", value)]
    if pairs and all(pairs) and all(match.group(1) in names for match in pairs):
        return {match.group(1): _scalar(match.group(2)) for match in pairs}
    # A small LM goes on after the arguments (a second call, an explanation): the first line is the argument.
    return _scalar(value.splitlines()[0])


def call_key(tool: Tool, arguments: Any) -> str:
    """The same call written two ways ("2*3" and {"expression": "2*3"}) gives the same key."""
    try:
        bound = tool.bind(arguments)
    except ToolArgumentError:
        bound = arguments
    return f"{tool.name}:{json.dumps(bound, sort_keys=True, default=str)}"


def arguments_text(arguments: Any) -> str:
    """One line for transcripts and traces."""
    if isinstance(arguments, Mapping):
        return json.dumps(dict(arguments), ensure_ascii=False, default=str)
    return "" if arguments is None else str(arguments)


def transcript(steps: Sequence[Step], max_chars: int | None = None) -> str:
    """The steps as the selector and the answer step read them, one numbered block per step, each result cut at
    `max_chars`."""
    if not steps:
        return NO_STEPS
    lines = []
    for number, step in enumerate(steps, start=1):
        result = step["result"].strip()
        if max_chars is not None and len(result) > max_chars:
            result = result[: max_chars - 1] + "…"
        lines.append(f"{number}. {step['tool']}({step['arguments']}) -> {result}")
    return "\n".join(lines)


def _balanced(text: str) -> str:
    depth, quote, escaped = 0, None, False
    for index, char in enumerate(text):
        if quote:
            escaped = char == "\\" and not escaped
            if char == quote and not escaped:
                quote = None
            continue
        if char in "\"'":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[: index + 1]
    return text


def _as_dict(text: str) -> dict | None:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    return parsed if isinstance(parsed, dict) else None


def _scalar(text: str) -> str:
    return text.strip().strip("\"'`").strip()
