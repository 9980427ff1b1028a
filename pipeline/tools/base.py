"""What a tool is: a typed Python function whose annotations and `Args:` docstring give its schema.

The schema is read and checked when the tool is made (a bad tool fails at import, not mid-conversation); the
arguments an LM proposes are bound to it leniently ("12" for an int is fine) and a call never raises: a bad
argument, an exception or a timeout comes back as a failed `ToolResult` whose text tells the LM what to fix.
"""

from __future__ import annotations

import inspect
import json
import re
import threading
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union, get_args, get_origin, get_type_hints

from pipeline.errors import ConfigError

_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
DEFAULT_TIMEOUT_S = 30.0


class ToolError(Exception):
    """Raised by a tool to report a failure in words meant for the LM (any other exception reaches it as its type and
    message, prefixed with the tool name)."""


@dataclass(frozen=True)
class ToolResult:
    """What one call gave: `text` is what the LM reads next; `citations`/`hits` carry document provenance."""

    text: str
    ok: bool = True
    citations: tuple[str, ...] = ()
    hits: tuple[Any, ...] = ()
    data: Any = None

    def summary(self, width: int = 100) -> str:
        line = " ".join(self.text.split())
        return line if len(line) <= width else line[: width - 1] + "…"


@dataclass(frozen=True)
class Parameter:
    name: str
    type: type
    description: str
    required: bool
    default: Any = None


@dataclass
class Tool:
    """A callable the agent may choose. Make one with `Tool.from_function` or the `@tool` decorator."""

    name: str
    description: str
    parameters: tuple[Parameter, ...]
    func: Callable[..., Any] = field(repr=False)
    side_effects: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S

    @classmethod
    def from_function(cls, func: Callable[..., Any], *, name: str | None = None, side_effects: bool = False,
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> Tool:
        """Read the schema from `func`: every parameter annotated with str, int, float or bool (or `X | None`),
        the first docstring paragraph as the description, one `Args:` line per parameter."""
        name = name or func.__name__
        if not _NAME.match(name):
            raise ConfigError(f"tool name {name!r} must be lower_snake_case letters and digits (at most 64)")
        doc = inspect.getdoc(func) or ""
        description, arg_docs = _parse_docstring(doc)
        if not description:
            raise ConfigError(f"tool {name!r} needs a docstring: its first paragraph tells the LM what the tool does")
        hints = get_type_hints(func)
        params = []
        for pname, param in inspect.signature(func).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ConfigError(f"tool {name!r}: *args/**kwargs cannot be described to an LM; name each parameter")
            if pname not in hints:
                raise ConfigError(f"tool {name!r}: parameter {pname!r} needs a type annotation (str, int, float or bool)")
            ptype, optional = _plain_type(hints[pname])
            if ptype is None:
                raise ConfigError(f"tool {name!r}: parameter {pname!r} is {hints[pname]!r}; use str, int, float or bool")
            if pname not in arg_docs:
                raise ConfigError(f"tool {name!r}: parameter {pname!r} is not described in the docstring's Args: section")
            required = param.default is param.empty and not optional
            default = None if param.default is param.empty else param.default
            params.append(Parameter(pname, ptype, arg_docs[pname], required, default))
        extra = set(arg_docs) - {p.name for p in params}
        if extra:
            raise ConfigError(f"tool {name!r}: the docstring describes {sorted(extra)}, which are not parameters")
        return cls(name, description, tuple(params), func, side_effects=side_effects, timeout_s=timeout_s)

    def schema(self) -> dict[str, Any]:
        """JSON schema of the arguments (what MCP and OpenAI-style tool lists use)."""
        return {
            "type": "object",
            "properties": {p.name: {"type": _JSON_TYPES[p.type], "description": p.description} for p in self.parameters},
            "required": [p.name for p in self.parameters if p.required],
        }

    def signature_text(self) -> str:
        """One line for the selector's tool list, e.g. `calculator(expression: string) - Evaluate arithmetic.`"""
        args = ", ".join(f"{p.name}: {_JSON_TYPES[p.type]}" + ("" if p.required else "?") for p in self.parameters)
        return f"{self.name}({args}) - {self.description}"

    def bind(self, arguments: Mapping[str, Any] | str | None) -> dict[str, Any]:
        """Check and convert the arguments an LM proposed; raise `ToolArgumentError` saying what is wrong.

        A JSON object string is parsed; a bare string goes to the only required string parameter."""
        arguments = _as_mapping(self, arguments)
        known = {p.name: p for p in self.parameters}
        unknown = set(arguments) - set(known)
        if unknown:
            raise ToolArgumentError(f"{self.name} has no argument(s) {sorted(unknown)}; it takes {sorted(known) or 'none'}")
        bound = {}
        for p in self.parameters:
            if p.name not in arguments or arguments[p.name] is None:
                if p.required:
                    raise ToolArgumentError(f"{self.name} needs {p.name!r} ({_JSON_TYPES[p.type]}): {p.description}")
                bound[p.name] = p.default
                continue
            bound[p.name] = _coerce(self.name, p, arguments[p.name])
        return bound

    def run(self, arguments: Mapping[str, Any] | str | None = None) -> ToolResult:
        """Call the tool; never raises. Bad arguments, an exception or a timeout become a failed result."""
        try:
            bound = self.bind(arguments)
        except ToolArgumentError as exc:
            return ToolResult(f"error: {exc}", ok=False)
        outcome: dict[str, Any] = {}

        def call() -> None:
            try:
                outcome["value"] = self.func(**bound)
            except ToolError as exc:
                outcome["error"] = f"error: {exc}"
            except Exception as exc:  # noqa: BLE001 - a tool's bug is a message for the LM, not a crash of the agent
                outcome["error"] = f"error: {self.name} failed ({type(exc).__name__}: {exc})"

        worker = threading.Thread(target=call, name=f"tool-{self.name}", daemon=True)
        worker.start()
        worker.join(self.timeout_s)
        if worker.is_alive():
            return ToolResult(f"error: {self.name} did not answer within {self.timeout_s:g} s", ok=False)
        if "error" in outcome:
            return ToolResult(outcome["error"], ok=False)
        value = outcome.get("value")
        return value if isinstance(value, ToolResult) else ToolResult(_as_text(value), data=value)


class ToolArgumentError(ToolError):
    """The arguments do not fit the tool's schema."""


def tool(func: Callable[..., Any] | None = None, *, name: str | None = None, side_effects: bool = False,
         timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """Decorator form of `Tool.from_function`: `@tool` or `@tool(side_effects=True)`."""
    def make(f: Callable[..., Any]) -> Tool:
        return Tool.from_function(f, name=name, side_effects=side_effects, timeout_s=timeout_s)
    return make(func) if func is not None else make


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    paragraphs = doc.split("\n\n")
    description = " ".join(paragraphs[0].split()) if paragraphs and not paragraphs[0].startswith("Args:") else ""
    args: dict[str, str] = {}
    in_args, current = False, None
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            in_args = True
            continue
        if in_args:
            if not stripped:
                current = None
                continue
            match = re.match(r"^(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$", stripped)
            if match and (line.startswith(("    ", "\t")) or current is None):
                current = match.group(1)
                args[current] = match.group(3)
            elif current is not None:
                args[current] += " " + stripped
            elif re.match(r"^[A-Z]\w*:$", stripped):
                in_args = False
    return description, args


def _plain_type(hint: Any) -> tuple[type | None, bool]:
    if hint in _JSON_TYPES:
        return hint, False
    if get_origin(hint) in (Union, types.UnionType):
        members = [a for a in get_args(hint) if a is not type(None)]
        if len(members) == 1 and members[0] in _JSON_TYPES and len(get_args(hint)) == 2:
            return members[0], True
    return None, False


def _as_mapping(tool: Tool, arguments: Mapping[str, Any] | str | None) -> Mapping[str, Any]:
    if arguments is None:
        return {}
    if isinstance(arguments, Mapping):
        return arguments
    if isinstance(arguments, str):
        text = arguments.strip()
        if text.startswith("{"):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ToolArgumentError(f"{tool.name}: the arguments are not valid JSON ({exc.msg}); give a JSON object") from None
            if isinstance(parsed, dict):
                return parsed
        required = [p for p in tool.parameters if p.required]
        if len(required) == 1:
            return {required[0].name: text}
        if not text and not required:
            return {}
    raise ToolArgumentError(f"{tool.name} takes a JSON object with {[p.name for p in tool.parameters]}")


def _coerce(tool_name: str, p: Parameter, value: Any) -> Any:
    wanted = _JSON_TYPES[p.type]
    try:
        if p.type is bool:
            if isinstance(value, bool):
                return value
            if str(value).strip().lower() in ("true", "yes", "1"):
                return True
            if str(value).strip().lower() in ("false", "no", "0"):
                return False
            raise ValueError
        if p.type is int:
            if isinstance(value, bool):
                raise ValueError
            number = float(str(value).strip().replace(",", "")) if not isinstance(value, int) else value
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            return int(number)
        if p.type is float:
            if isinstance(value, bool):
                raise ValueError
            return float(str(value).strip().replace(",", "")) if not isinstance(value, (int, float)) else float(value)
        return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    except (TypeError, ValueError):
        raise ToolArgumentError(f"{tool_name}: {p.name!r} must be {wanted}, got {value!r}") from None


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)
