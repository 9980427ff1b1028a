"""Tools from an MCP server: one long-lived stdio client per configured server, its tools as ordinary `Tool`s.

One task on a background event-loop thread holds `async with Client(...)` for the life of the connection (the SDK
forbids entering and leaving it from different tasks); the agent's threads call through a sync bridge. A server
that dies is restarted once; after a second death its tools answer with a failed result saying it is down.

Decisions a deployment should know:
- Side effects follow the server's own annotation: a tool is side-effect-free only if it declares
  `readOnlyHint: true`; any other tool counts as side-effecting, so the registry keeps it off unless the
  deployment's allow-list names it.
- Parameters come from the tool's JSON schema. string/integer/number/boolean (or one of them or null) map to
  typed parameters; any other schema (array, object, untyped) is kept as a string parameter holding JSON, parsed
  before the call, so the LM can still use the tool and the server validates what it gets.
- Names are the server's own (made lower_snake_case); `mcp_tools` prefixes the server name only on a clash.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, Self

from mcp import Client, MCPError, StdioServerParameters, stdio_client
from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT

from pipeline.errors import ConfigError
from pipeline.tools.base import Parameter, Tool, ToolResult

__all__ = ["McpServerTools", "mcp_tools"]

log = logging.getLogger(__name__)

_SCALARS: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool}
_ERROR_PREFIX = re.compile(r"^Error executing tool \S+: ")
_GRACE_S = 5.0  # the bridge's own deadline beyond the MCP per-call timeout, so the MCP one fires first
_STOP_S = 5.0


class ServerSettings(Protocol):
    """What `McpServerSettings` (pipeline/tools/settings.py) provides."""

    name: str
    command: str
    args: list[str]
    env: dict[str, str]
    allowed_tools: list[str] | None
    timeout_s: float


@dataclasses.dataclass
class _Connection:
    client: Client
    specs: list[Any]
    stop: asyncio.Event
    holder: concurrent.futures.Future[None]


class McpServerTools:
    """One MCP server over stdio, started now; `tools()` are its allowed tools as `Tool`s. Close it when done."""

    def __init__(self, settings: ServerSettings, *, start_timeout_s: float = 30.0) -> None:
        self.settings = settings
        self.name = settings.name
        self.timeout_s = float(settings.timeout_s)
        self._check_command()
        self._params = StdioServerParameters(command=settings.command, args=list(settings.args or []),
                                             env=dict(settings.env or {}) or None)
        self._start_timeout_s = start_timeout_s
        # The server's stderr, kept for the error message when it fails; closed in close().
        self._errlog = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")  # noqa: SIM115
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"mcp-{self.name}", daemon=True)
        self._thread.start()
        self._lock = threading.Lock()
        self._restarts_left = 1
        self._down: str | None = None
        self._closed = False
        try:
            self._connection: _Connection | None = self._connect()
        except ConnectionError as exc:
            self.close()
            raise ConfigError(f"MCP server {self.name!r} ({self._command_line()}) did not start: {exc}") from None
        self._tools = self._make_tools(self._connection.specs)

    # -- public -------------------------------------------------------------------------------------------

    def tools(self) -> list[Tool]:
        return list(self._tools)

    @property
    def is_down(self) -> bool:
        return self._down is not None

    def call(self, name: str, arguments: Mapping[str, Any] | None = None, timeout: float | None = None, *,
             retry_after_restart: bool = True) -> ToolResult:
        """Call the MCP tool `name` (its server-side name); never raises. A dead server is restarted once."""
        timeout = self.timeout_s if timeout is None else timeout
        arguments = dict(arguments or {})
        for _ in range(2):
            with self._lock:
                connection, down = self._connection, self._down
            if self._closed:
                return ToolResult(f"error: MCP server {self.name!r} is closed", ok=False)
            if connection is None:
                return self._down_result(down)
            future = asyncio.run_coroutine_threadsafe(
                connection.client.call_tool(name, arguments, read_timeout_seconds=timeout), self._loop)
            try:
                result = future.result(timeout + _GRACE_S)
            except MCPError as exc:
                if exc.code == REQUEST_TIMEOUT:
                    return ToolResult(f"error: {name} (MCP server {self.name!r}) did not answer within {timeout:g} s",
                                      ok=False)
                if exc.code != CONNECTION_CLOSED:
                    return ToolResult(f"error: {name} failed on MCP server {self.name!r}: {exc.message}", ok=False)
            except concurrent.futures.TimeoutError:
                future.cancel()
                return ToolResult(f"error: {name} (MCP server {self.name!r}) did not answer within {timeout:g} s",
                                  ok=False)
            except Exception as exc:  # noqa: BLE001 - a broken pipe surfaces as an anyio/OS error, not an MCPError
                log.warning("MCP server %r: call to %s failed: %s: %s", self.name, name, type(exc).__name__, exc)
            else:
                return _as_result(result)
            if not self._recover(connection):
                return self._down_result(self._down)
            if not retry_after_restart:
                return ToolResult(f"error: MCP server {self.name!r} died during {name} and was restarted; the call "
                                  "may or may not have taken effect, check before calling it again", ok=False)
        return self._down_result(self._down)

    def close(self) -> None:
        """Stop the server process and the event-loop thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            connection, self._connection = getattr(self, "_connection", None), None
        if connection is not None:
            self._disconnect(connection)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_STOP_S)
        if not self._thread.is_alive():
            self._loop.close()
        self._errlog.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- connection ---------------------------------------------------------------------------------------

    def _check_command(self) -> None:
        command = self.settings.command
        if not command or not (shutil.which(command) or (os.path.isfile(command) and os.access(command, os.X_OK))):
            raise ConfigError(f"MCP server {self.name!r}: command {command!r} was not found (not on PATH and not an "
                              "executable file); fix the server's `command` in the settings or install it")

    def _command_line(self) -> str:
        return " ".join([self.settings.command, *self.settings.args])

    def _connect(self) -> _Connection:
        """Start the server and hold its client in one task on the loop thread; raise ConnectionError if it fails."""
        ready: concurrent.futures.Future[tuple[Client, list[Any]]] = concurrent.futures.Future()
        stop_box: list[asyncio.Event] = []

        async def hold() -> None:
            stop = asyncio.Event()
            stop_box.append(stop)
            try:
                async with Client(stdio_client(self._params, errlog=self._errlog),
                                  read_timeout_seconds=self._start_timeout_s) as client:
                    listed = await client.list_tools()
                    ready.set_result((client, list(listed.tools)))
                    await stop.wait()
            except BaseException as exc:  # reported through `ready` at start-up, logged once running
                if not ready.done():
                    ready.set_exception(exc)
                elif not isinstance(exc, asyncio.CancelledError):
                    log.debug("MCP server %r: closing the client raised %s: %s", self.name, type(exc).__name__, exc)
                if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
                    raise

        holder = asyncio.run_coroutine_threadsafe(hold(), self._loop)
        try:
            client, specs = ready.result(self._start_timeout_s + _GRACE_S)
        except concurrent.futures.TimeoutError:
            holder.cancel()
            raise ConnectionError(f"no answer to the MCP handshake within {self._start_timeout_s:g} s"
                                  f"{self._stderr_tail()}") from None
        except Exception as exc:  # noqa: BLE001 - whatever stopped the start-up, the user gets one clear error
            holder.cancel()
            raise ConnectionError(f"{_describe(exc)}{self._stderr_tail()}") from None
        return _Connection(client, specs, stop_box[0], holder)

    def _disconnect(self, connection: _Connection) -> None:
        self._loop.call_soon_threadsafe(connection.stop.set)
        try:
            connection.holder.result(_STOP_S)
        except concurrent.futures.TimeoutError:
            connection.holder.cancel()
        except (Exception, concurrent.futures.CancelledError) as exc:  # noqa: BLE001 - the old connection is gone
            log.debug("MCP server %r: disconnect raised %s", self.name, exc)

    def _recover(self, failed: _Connection) -> bool:
        """After `failed` lost its server: restart once (True if a live connection is there now)."""
        with self._lock:
            if self._connection is not failed:  # another thread already restarted (or gave up)
                return self._connection is not None
            self._connection = None
            self._disconnect(failed)
            if self._restarts_left <= 0:
                self._down = f"it stopped again after a restart{self._stderr_tail()}"
                log.error("MCP server %r is down: %s", self.name, self._down)
                return False
            self._restarts_left -= 1
            log.warning("MCP server %r stopped; restarting it (once)", self.name)
            try:
                self._connection = self._connect()
            except ConnectionError as exc:
                self._down = f"the restart failed: {exc}"
                log.error("MCP server %r is down: %s", self.name, self._down)
                return False
            return True

    def _down_result(self, reason: str | None) -> ToolResult:
        return ToolResult(f"error: MCP server {self.name!r} is down ({reason or 'not running'}); its tools cannot "
                          "be used now, answer without them", ok=False)

    def _stderr_tail(self, limit: int = 400) -> str:
        try:
            self._errlog.flush()
            self._errlog.seek(0, os.SEEK_END)
            size = self._errlog.tell()
            self._errlog.seek(max(0, size - limit))
            tail = " ".join(self._errlog.read().split())
        except (OSError, ValueError):
            return ""
        return f"; its stderr ended with: {tail}" if tail else ""

    # -- tools --------------------------------------------------------------------------------------------

    def _make_tools(self, specs: list[Any]) -> list[Tool]:
        by_name = {spec.name: spec for spec in specs}
        allowed = self.settings.allowed_tools
        unknown = [name for name in allowed or [] if name not in by_name]
        if unknown:
            self.close()
            raise ConfigError(f"MCP server {self.name!r}: allowed_tools names {unknown}, which it does not offer; "
                              f"it offers {sorted(by_name) or 'no tools'}")
        chosen = specs if allowed is None else [by_name[name] for name in dict.fromkeys(allowed)]
        if not chosen:
            log.warning("MCP server %r: no tools join the registry (allowed_tools is empty or it offers none)", self.name)
        tools = [tool for tool in (self._make_tool(spec) for spec in chosen) if tool is not None]
        side = [t.name for t in tools if t.side_effects]
        if side:
            log.info("MCP server %r: tools without readOnlyHint count as side-effecting: %s", self.name, side)
        return tools

    def _make_tool(self, spec: Any) -> Tool | None:
        schema = spec.input_schema or {}
        required = set(schema.get("required") or [])
        params, json_params = [], set()
        for pname, prop in (schema.get("properties") or {}).items():
            ptype, optional = _schema_type(prop if isinstance(prop, dict) else {})
            description = " ".join(str(prop.get("description") or prop.get("title") or pname).split())
            if ptype is None:
                json_params.add(pname)
                kind = prop.get("type", "value") if isinstance(prop.get("type"), str) else "value"
                ptype, description = str, f"{description} (JSON {kind})"
            params.append(Parameter(pname, ptype, description, pname in required and not optional,
                                    prop.get("default")))
        description = " ".join((spec.description or "").split("\n\n")[0].split()) or spec.title or \
            f"the {spec.name} tool of the MCP server {self.name}"
        read_only = bool(spec.annotations and spec.annotations.read_only_hint)
        mcp_name = spec.name

        def invoke(**arguments: Any) -> ToolResult:
            payload = {k: _decode_json(v) if k in json_params else v for k, v in arguments.items() if v is not None}
            return self.call(mcp_name, payload, retry_after_restart=read_only)

        return Tool(_tool_name(mcp_name), description, tuple(params), invoke, side_effects=not read_only,
                    timeout_s=self.timeout_s + 2 * _GRACE_S)


def mcp_tools(servers: Iterable[McpServerTools], taken: Iterable[str] = ()) -> list[Tool]:
    """All servers' tools; a name that clashes with `taken` or another server's tool gets `<server>_` in front."""
    servers = list(servers)
    counts: dict[str, int] = {}
    for server in servers:
        for item in server.tools():
            counts[item.name] = counts.get(item.name, 0) + 1
    taken = set(taken)
    tools = []
    for server in servers:
        for item in server.tools():
            if counts[item.name] > 1 or item.name in taken:
                renamed = _tool_name(f"{server.name}_{item.name}")
                log.info("MCP tool %r of server %r is called %r here (the name clashes)", item.name, server.name,
                         renamed)
                item = dataclasses.replace(item, name=renamed)
            tools.append(item)
    return tools


def _schema_type(prop: dict[str, Any]) -> tuple[type | None, bool]:
    kind = prop.get("type")
    if isinstance(kind, str):
        return _SCALARS.get(kind), False
    if isinstance(kind, list):
        members = [k for k in kind if k != "null"]
        return (_SCALARS.get(members[0]) if len(members) == 1 else None), "null" in kind
    options = prop.get("anyOf") or prop.get("oneOf")
    if isinstance(options, list):
        members = [o for o in options if isinstance(o, dict) and o.get("type") != "null"]
        nullable = len(members) < len(options)
        if len(members) == 1 and isinstance(members[0].get("type"), str):
            return _SCALARS.get(members[0]["type"]), nullable
    return None, False


def _tool_name(name: str) -> str:
    cleaned = re.sub(r"_+", "_", re.sub(r"[^a-z0-9_]", "_", name.lower())).strip("_")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"mcp_{cleaned}"
    return cleaned[:64]


def _decode_json(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value  # the server's own validation says what is wrong with it


def _as_result(result: Any) -> ToolResult:
    parts = []
    for block in result.content or []:
        text = getattr(block, "text", None)
        parts.append(text if text is not None else f"[{getattr(block, 'type', 'content')}]")
    text = "\n".join(parts)
    structured = result.structured_content
    data = structured.get("result") if isinstance(structured, dict) and set(structured) == {"result"} else structured
    if result.is_error:
        lines = [line for line in _ERROR_PREFIX.sub("", text).splitlines() if "errors.pydantic.dev" not in line]
        return ToolResult(f"error: {' '.join(' '.join(lines).split()) or 'the tool failed'}", ok=False)
    return ToolResult(text if text else json.dumps(data, default=str), data=data)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    if isinstance(exc, MCPError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"
