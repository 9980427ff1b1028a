"""The bundled MCP server plus tools the tests need: its pid (to kill it), a slow tool, non-scalar arguments, a tool
without a read-only annotation. Run as a script: `python tests/pipeline/tools/mcp_fixture_server.py`."""

from __future__ import annotations

import os

import anyio
from mcp.types import ToolAnnotations

from pipeline.tools.mcp_server import server

_READ_ONLY = ToolAnnotations(readOnlyHint=True)


@server.tool(annotations=_READ_ONLY)
def server_pid() -> int:
    """The process id of this server."""
    return os.getpid()


@server.tool(annotations=_READ_ONLY)
async def sleep_for(seconds: float) -> str:
    """Wait, then answer."""
    await anyio.sleep(seconds)
    return f"slept {seconds}"


@server.tool(annotations=_READ_ONLY)
def count_tags(tags: list[str], weights: dict[str, float] | None = None, label: str | None = None) -> str:
    """Count tags, weighted."""
    weights = weights or {}
    return f"{label or 'total'}: {sum(weights.get(tag, 1.0) for tag in tags):g}"


@server.tool()
def write_note(text: str) -> str:
    """Pretend to store a note (no read-only annotation, so it counts as side-effecting)."""
    return f"stored {len(text)} characters"


if __name__ == "__main__":
    server.run()
