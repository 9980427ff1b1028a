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

import dspy

from pipeline.agent.state import Step
from pipeline.tools.base import Tool, ToolArgumentError
from pipeline.tools.registry import ToolRegistry

ANSWER_WORDS = frozenset({"answer", "finish", "final", "final answer", "final_answer", "done", "respond", "none", "stop"})
NO_STEPS = "(none yet)"

_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_PAIR = re.compile(r"""^\s*["']?(\w+)["']?\s*[:=]\s*(.+?)\s*$""")
# What a tool name looks like when written loosely: a word or two, maybe quoted, maybe with "(...)" after it.
_NAME_LIKE = re.compile(r"^[`'\"*]*[A-Za-z][\w\-.]*(?: [\w\-.]+){0,2}[`'\"*]*(?:\(.*\))?[`'\".*]*$")
_CALL = re.compile(r"^\s*[\w\-. `'\"]+\((.*)\)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Choice:
    """The selector's decision: `tool` None means answer now; `error` is a corrective message instead of a call;
    `prose` marks a reply that names no tool at all (a sentence, a copied passage) rather than a wrong name."""

    tool: str | None
    arguments: Any = None
    error: str | None = None
    prose: bool = False


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
        name = _taker(registry, parse_arguments(arguments_text, None))
    if name is None:
        return Choice(None, error=f"error: there is no tool {first[:60]!r}. Choose one of: {', '.join(registry.names())}, "
                                  "or answer.", prose=not _NAME_LIKE.match(first))
    tool = registry.get(name)
    arguments = parse_arguments(arguments_text, tool)
    if arguments in (None, "", {}) and (inline := _CALL.match(first)):
        arguments = parse_arguments(inline.group(1), tool)
    try:
        tool.bind(arguments)
    except ToolArgumentError as exc:
        # {"expression": ...} under the name addon_price: the arguments, written first, say which tool was meant.
        taker = _taker(registry, parse_arguments(arguments_text, None))
        if taker is not None and taker != name:
            return choose(registry, taker, arguments_text)
        return Choice(name, arguments, error=f"error: {exc}. Arguments for {tool.signature_text()}")
    return Choice(name, arguments)


def ground(choice: Choice, tool: Tool, question: str, demos: Sequence[Any]) -> Choice:
    """Catch arguments a small LM copied from a demo instead of taking them from the question.

    SmolLM2-135M picks the right tool but writes a demo's arguments ("12 * 7" for "What is 15% of 240?"). A call
    equal to a demo's call, on another question, is not what was asked: a tool with one required text parameter
    (calculator, document search) gets the question itself, which those tools read; any other gets a correction.
    Arguments that do not fit such a tool (missing, misnamed) are read the same way."""
    if choice.tool is None:
        return choice
    single = [p for p in tool.parameters if p.required]
    takes_question = len(single) == 1 and single[0].type is str
    if choice.error is not None:
        # Arguments that do not fit (missing, misnamed) are the question itself for such a tool.
        return Choice(tool.name, question) if takes_question else choice
    key = call_key(tool, choice.arguments)
    copied = any(demo.get("question") != question and _demo_key(tool, demo) == key for demo in demos)
    if not copied:
        return choice
    if takes_question:
        return Choice(tool.name, question)
    return Choice(tool.name, choice.arguments, error=f"error: the arguments {arguments_text(choice.arguments)} are an "
                                                     f"example's, not this question's. Arguments for {tool.signature_text()}")


def with_fields(demo: Any, **values: Any) -> dspy.Example:
    """A copy of a demo with some fields replaced; a demo is a `dspy.Example`, or a dict once loaded from a file."""
    base = demo.toDict() if hasattr(demo, "toDict") else dict(demo)
    return dspy.Example(**{**base, **values})


def _taker(registry: ToolRegistry, arguments: Any) -> str | None:
    """The one allowed tool whose parameters are exactly the keys of `arguments` (with every required one given):
    a small LM that writes the arguments first often gets them right and the name wrong."""
    if not isinstance(arguments, dict) or not arguments:
        return None
    keys = set(arguments)
    fits = [tool.name for tool in registry
            if keys <= {p.name for p in tool.parameters} and {p.name for p in tool.parameters if p.required} <= keys]
    return fits[0] if len(fits) == 1 else None


def nearest_demos(demos: Sequence[Any], question: str, steps_so_far: int, k: int) -> list[Any]:
    """The `k` demos most like this turn, the nearest last: a small LM copies the tool of the demo it read last.

    Alike means at the same stage (no steps yet, or some) and sharing words with the question: a content word counts
    three times a function word ("how do I" still finds the how-to demos), and every number counts as the same
    word, so arithmetic questions find arithmetic demos. Demo order in the file breaks ties."""
    if len(demos) <= 1:
        return list(demos)
    words = _words(question)

    def nearness(item: tuple[int, Any]) -> tuple[int, int, int]:
        index, demo = item
        same_stage = (str(demo.get("steps") or NO_STEPS).strip() == NO_STEPS) == (steps_so_far == 0)
        shared = words & _words(str(demo.get("question", "")))
        return int(same_stage), sum(1 if word in _STOP_WORDS else 3 for word in shared), -index

    ranked = sorted(enumerate(demos), key=nearness)
    return [demo for _, demo in ranked[-k:]]


_STOP_WORDS = frozenset(["the", "a", "an", "is", "are", "was", "what", "which", "who", "how", "do", "does", "did", "i", "we", "you", "it", "of", "for", "to", "in", "on", "at", "by", "with", "and", "or", "my", "our", "your", "me", "be", "can", "this", "that", "there"])


def _words(text: str) -> set[str]:
    return {"#" if word.isdigit() else word for word in re.findall(r"[a-z]+|\d+", text.lower())}


def _demo_key(tool: Tool, demo: Any) -> str | None:
    if str(demo.get("tool", "")).strip() != tool.name:
        return None
    return call_key(tool, parse_arguments(demo.get("arguments"), tool))


def parse_arguments(text: object, tool: Tool | None) -> Any:
    """The arguments as a dict where any reading gives one, else the bare text (bound to a tool's only required
    parameter by `Tool.bind`). `key: value` lines are read for the tool's parameter names (any name without a
    tool)."""
    if isinstance(text, Mapping):
        return dict(text)
    names = {p.name for p in tool.parameters} if tool is not None else set()
    value = _FENCE.sub("", str(text or "").strip()).strip()
    if value.lower() in ("", "{}", "none", "null", "(none)", "n/a"):
        return {}
    if value.startswith("{"):
        for candidate in (_balanced(value), value, value + "}"):
            parsed = _as_dict(candidate)
            if parsed is not None:
                return parsed
    pairs = [_PAIR.match(part) for part in re.split(r"[,\n]\s*(?=[\"']?\w+[\"']?\s*[:=])", value)]
    if pairs and all(pairs) and all(match.group(1) in names or tool is None for match in pairs):
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


def tool_list(registry: ToolRegistry, *, brief: bool = False) -> str:
    """The allowed tools as the selector reads them: `name(arg: type) - description` lines, or with `brief` just
    `name(arg, arg)` (a 135M model follows a short list and loses the thread in a long one)."""
    if not brief:
        return registry.describe()
    return "\n".join(f"{tool.name}({', '.join(p.name for p in tool.parameters)})" for tool in registry)


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
