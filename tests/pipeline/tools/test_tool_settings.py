"""The tools: settings section: bundled defaults that exist, start-up errors that say what to fix."""

import pytest
from pydantic import ValidationError

from pipeline.config import Settings
from pipeline.tools.settings import McpServerSettings, SqlSettings, ToolSettings


def test_defaults_point_at_the_bundled_catalog_and_allow_every_tool_without_side_effects():
    tools = Settings().tools
    assert tools.allow is None
    assert tools.sql.enabled and tools.sql.functions.is_file()
    assert tools.sql.database.endswith("catalog.sqlite")
    assert tools.max_steps == 6 and tools.mcp_servers == []


def test_a_missing_functions_file_or_database_is_a_start_up_error(tmp_path):
    with pytest.raises(ValidationError, match="tools.sql.functions.*not a file"):
        SqlSettings(functions=tmp_path / "nope.yaml")
    with pytest.raises(ValidationError, match="neither a SQLite file nor a SQLAlchemy URL"):
        SqlSettings(database=str(tmp_path / "nope.sqlite"))
    assert SqlSettings(database="postgresql://reader@db/catalog").database.startswith("postgresql")
    assert not SqlSettings(enabled=False, functions=tmp_path / "nope.yaml").enabled


def test_mcp_servers_need_a_command_and_distinct_names():
    server = McpServerSettings(name="units", command="python", args=["-m", "pipeline.tools.mcp_server"])
    assert server.timeout_s == 10 and server.allowed_tools is None and server.env == {}
    with pytest.raises(ValidationError, match="used twice"):
        ToolSettings(mcp_servers=[server, server])
    with pytest.raises(ValidationError):
        McpServerSettings(name="units", command="")


def test_an_unknown_key_in_the_section_is_an_error():
    with pytest.raises(ValidationError, match="allow_list"):
        ToolSettings(allow_list=["calculator"])


def test_environment_variables_reach_the_section(monkeypatch):
    monkeypatch.setenv("TESSERA_TOOLS__MAX_STEPS", "3")
    monkeypatch.setenv("TESSERA_TOOLS__ALLOW", '["calculator"]')
    tools = Settings().tools
    assert tools.max_steps == 3 and tools.allow == ["calculator"]
