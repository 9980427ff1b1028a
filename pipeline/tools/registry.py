"""The tools one deployment lets its agent use: every tool by name, filtered by the allow-list at start-up.

Side-effecting tools are off unless the allow-list names them; an allow-list naming a tool nobody built is a
start-up error listing the known ones. `resolve` maps the loosely written tool name an LM produces ("Calculator()",
"`search-documents`") to an allowed one, so the agent can tell a near miss from a made-up tool.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pipeline.errors import ConfigError
from pipeline.tools.base import Tool, ToolResult

log = logging.getLogger(__name__)

_QUOTES = "\"'`“”‘’*"


class ToolRegistry:
    """Allowed tools by name. `allow=None` allows every tool without side effects; a list allows exactly those."""

    def __init__(self, tools: Iterable[Tool], allow: Iterable[str] | None = None) -> None:
        known: dict[str, Tool] = {}
        for item in tools:
            if not isinstance(item, Tool):
                raise ConfigError(f"ToolRegistry takes Tool objects, got {type(item).__name__}; wrap the function with @tool")
            if item.name in known:
                raise ConfigError(f"two tools are named {item.name!r}; give one of them another name")
            known[item.name] = item
        self.known = known
        if allow is None:
            chosen = [name for name, item in known.items() if not item.side_effects]
            skipped = sorted(name for name, item in known.items() if item.side_effects)
            if skipped:
                log.info("tools with side effects stay off until tools.allow names them: %s", ", ".join(skipped))
        else:
            allow = list(dict.fromkeys(allow))
            unknown = [name for name in allow if name not in known]
            if unknown:
                raise ConfigError(
                    f"tools.allow names unknown tool(s) {unknown}; the known tools are {sorted(known) or 'none'}"
                )
            chosen = allow
        self._tools: dict[str, Tool] = {name: known[name] for name in chosen}
        self._loose = {_loose(name): name for name in self._tools}

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self):
        return iter(self._tools.values())

    def names(self) -> list[str]:
        """The allowed tool names, in the order the tools were given."""
        return list(self._tools)

    def get(self, name: str) -> Tool:
        """The allowed tool called `name` (exactly); a KeyError naming the allowed ones otherwise."""
        try:
            return self._tools[name]
        except KeyError:
            raise KeyError(f"no allowed tool {name!r}; the allowed tools are {self.names()}") from None

    def describe(self) -> str:
        """The tool list the selector reads: one `name(arg: type) - description` line per allowed tool."""
        return "\n".join(item.signature_text() for item in self._tools.values())

    def resolve(self, name_from_lm: object) -> str | None:
        """The allowed tool an LM meant by `name_from_lm`, forgiving case, quotes, backticks, spaces or hyphens for
        underscores and a trailing "()" or "(args...)"; None when no allowed tool matches."""
        if not isinstance(name_from_lm, str):
            return None
        text = name_from_lm.strip()
        if text in self._tools:
            return text
        text = text.strip(_QUOTES).strip()
        text = re.sub(r"\(.*\)?\s*$", "", text, flags=re.DOTALL).strip().strip(_QUOTES).strip()
        return self._loose.get(_loose(text))

    def call(self, name: str, arguments: Mapping[str, Any] | str | None = None) -> ToolResult:
        """Run the allowed tool `name` (resolved loosely); never raises. An unknown name is a failed result that
        lists the allowed tools, which the agent hands back to the selector."""
        resolved = self.resolve(name)
        if resolved is None:
            return ToolResult(f"error: there is no tool {name!r}; choose one of: {', '.join(self.names())}", ok=False)
        return self._tools[resolved].run(arguments)


def _loose(name: str) -> str:
    return re.sub(r"[\s\-_.]+", "_", name.strip().lower()).strip("_")
