"""MCP tools end to end: the bundled server as a subprocess, its tools as `Tool`s, failures as failed results,
restart-once after a crash, and clear start-up errors."""

from __future__ import annotations

import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.tools.mcp_client import McpServerTools, mcp_tools
from pipeline.tools.registry import ToolRegistry
from pipeline.tools.settings import McpServerSettings

FIXTURE_SERVER = str(Path(__file__).with_name("mcp_fixture_server.py"))



def settings(name: str = "tessera", args: list[str] | None = None, command: str = sys.executable, **fields):
    values = {"env": {}, "allowed_tools": None, "timeout_s": 5.0, **fields}
    return McpServerSettings(name=name, command=command, args=args or ["-m", "pipeline.tools.mcp_server"], **values)


@pytest.fixture(scope="module")
def bundled():
    with McpServerTools(settings()) as server:
        yield server


@pytest.fixture(scope="module")
def fixture_server():
    with McpServerTools(settings("fixture", [FIXTURE_SERVER])) as server:
        yield server


def by_name(server: McpServerTools) -> dict:
    return {item.name: item for item in server.tools()}


def test_bundled_server_offers_typed_read_only_tools(bundled):
    tools = by_name(bundled)
    assert sorted(tools) == ["convert_units", "ticket_status"]
    convert = tools["convert_units"]
    assert [(p.name, p.type, p.required) for p in convert.parameters] == [
        ("value", float, True), ("from_unit", str, True), ("to_unit", str, True)]
    assert "temperature" in convert.description and "\n" not in convert.description
    assert convert.signature_text().startswith("convert_units(value: number, from_unit: string, to_unit: string) - ")
    assert not any(item.side_effects for item in tools.values())


@pytest.mark.parametrize(("arguments", "expected"), [
    ({"value": "1.5", "from_unit": "GiB", "to_unit": "MB"}, "1.5 GiB = 1610.612736 MB"),
    ({"value": 212, "from_unit": "fahrenheit", "to_unit": "C"}, "212 F = 100 C"),
    ({"value": 10, "from_unit": "km", "to_unit": "miles"}, "10 km = 6.213712 mi"),
    ({"value": 2, "from_unit": "h", "to_unit": "min"}, "2 h = 120 min"),
    ({"value": 1, "from_unit": "lb", "to_unit": "g"}, "1 lb = 453.59237 g"),
])
def test_convert_units_over_mcp(bundled, arguments, expected):
    result = by_name(bundled)["convert_units"].run(arguments)
    assert result.ok and result.text == expected


def test_calls_from_many_threads_share_one_session(bundled):
    convert = by_name(bundled)["convert_units"]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: convert.run({"value": n, "from_unit": "m", "to_unit": "cm"}), range(40)))
    assert [r.text for r in results] == [f"{n} m = {n * 100} cm" for n in range(40)]


def test_ticket_status_reads_the_bundled_tickets(bundled):
    ticket = by_name(bundled)["ticket_status"]
    result = ticket.run("cg 1047")  # a bare string goes to the only parameter; the id is normalised
    assert result.ok
    assert result.text.startswith("CG-1047 (Corvid Gateway 4.2): status in_progress, priority critical, assignee Mei Lin")
    missing = ticket.run({"ticket_id": "CG-9999"})
    assert not missing.ok and "no ticket CG-9999" in missing.text and "CG-1042" in missing.text


def test_failures_come_back_as_failed_results(bundled):
    convert = by_name(bundled)["convert_units"]
    tool_error = convert.run({"value": 1, "from_unit": "kg", "to_unit": "m"})
    assert not tool_error.ok and tool_error.text == (
        "error: cannot convert mass (kg) to length (m); both units must measure the same thing")
    unknown_unit = convert.run({"value": 1, "from_unit": "furlong", "to_unit": "m"})
    assert not unknown_unit.ok and "unknown unit 'furlong'" in unknown_unit.text
    assert not convert.run({"value": "a lot", "from_unit": "kg", "to_unit": "g"}).ok  # checked before the call
    missing = convert.run({"value": 3})
    assert not missing.ok and "from_unit" in missing.text
    server_side = bundled.call("convert_units", {"value": "a lot", "from_unit": "kg", "to_unit": "g"})
    assert not server_side.ok and "valid number" in server_side.text and "pydantic.dev" not in server_side.text
    unknown_tool = bundled.call("no_such_tool", {})
    assert not unknown_tool.ok and "no_such_tool" in unknown_tool.text
    assert convert.run({"value": 1, "from_unit": "kg", "to_unit": "g"}).ok  # the session is still fine


def test_non_scalar_arguments_travel_as_json_text(fixture_server):
    count = by_name(fixture_server)["count_tags"]
    params = {p.name: p for p in count.parameters}
    assert params["tags"].type is str and params["tags"].required and "JSON array" in params["tags"].description
    assert params["weights"].type is str and not params["weights"].required
    assert params["label"].type is str and not params["label"].required  # `str | None` is still a plain string
    assert count.run({"tags": '["a", "b", "a"]', "weights": '{"a": 2}'}).text == "total: 5"
    assert count.run({"tags": ["x", "y"], "label": "pair"}).text == "pair: 2"  # a real list from the LM works too
    bad = count.run({"tags": "not json"})
    assert not bad.ok and "tags" in bad.text


def test_side_effects_follow_the_read_only_hint(fixture_server):
    tools = by_name(fixture_server)
    assert tools["write_note"].side_effects and not tools["sleep_for"].side_effects
    assert "write_note" not in ToolRegistry(tools.values()).names()  # off unless the allow-list names it
    assert "write_note" in ToolRegistry(tools.values(), allow=["write_note", "convert_units"]).names()


def test_a_slow_call_times_out_and_the_session_stays_usable(fixture_server):
    started = time.monotonic()
    slow = fixture_server.call("sleep_for", {"seconds": 5}, timeout=0.5)
    assert not slow.ok and "did not answer within 0.5 s" in slow.text
    assert time.monotonic() - started < 3
    assert fixture_server.call("sleep_for", {"seconds": 0}, timeout=2).text == "slept 0.0"


def test_clashing_names_get_the_server_prefix(bundled, fixture_server):
    names = [item.name for item in mcp_tools([bundled, fixture_server], taken=["server_pid"])]
    assert "tessera_convert_units" in names and "fixture_convert_units" in names
    assert "fixture_server_pid" in names and "sleep_for" in names and "convert_units" not in names
    renamed = {item.name: item for item in mcp_tools([bundled, fixture_server])}
    assert renamed["tessera_ticket_status"].run("CG-1042").ok


def test_a_killed_server_is_restarted_once_then_reported_down():
    with McpServerTools(settings("crashy", [FIXTURE_SERVER])) as server:
        tools = by_name(server)
        first_pid = int(tools["server_pid"].run().text)
        os.kill(first_pid, signal.SIGKILL)
        # a side-effecting call is not repeated behind the user's back: it reports the restart
        note = tools["write_note"].run({"text": "hello"})
        assert not note.ok and "restarted" in note.text
        second_pid = int(tools["server_pid"].run().text)
        assert second_pid != first_pid
        os.kill(second_pid, signal.SIGKILL)
        down = tools["convert_units"].run({"value": 1, "from_unit": "m", "to_unit": "cm"})
        assert not down.ok and "MCP server 'crashy' is down" in down.text and server.is_down
        assert not tools["ticket_status"].run("CG-1042").ok
    assert not server.call("server_pid").ok  # closed


def test_a_read_only_call_is_retried_after_the_restart():
    with McpServerTools(settings("again", [FIXTURE_SERVER])) as server:
        tools = by_name(server)
        os.kill(int(tools["server_pid"].run().text), signal.SIGKILL)
        result = tools["convert_units"].run({"value": 1, "from_unit": "KiB", "to_unit": "B"})
        assert result.ok and result.text == "1 KiB = 1024 B"


def test_a_missing_command_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="command 'tessera-no-such-mcp-server' was not found"):
        McpServerTools(settings(command="tessera-no-such-mcp-server", args=["--stdio"]))


def test_a_server_that_exits_at_start_is_a_config_error_with_its_stderr():
    script = "import sys; print('tickets file is missing', file=sys.stderr); sys.exit(3)"
    with pytest.raises(ConfigError, match="did not start.*tickets file is missing"):
        McpServerTools(settings("broken", ["-c", script]))


def test_allowed_tools_filters_and_an_unknown_name_lists_the_offer():
    with McpServerTools(settings(allowed_tools=["ticket_status"])) as server:
        assert [item.name for item in server.tools()] == ["ticket_status"]
    with pytest.raises(ConfigError, match=r"offers \['convert_units', 'ticket_status'\]"):
        McpServerTools(settings(allowed_tools=["ticket_lookup"]))
