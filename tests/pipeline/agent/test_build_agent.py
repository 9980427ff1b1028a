"""The agent as the settings build it: every configured tool (documents, calculator, SQL functions, the bundled MCP
server) under the allow-list, the step budget from the settings, and start-up errors that name what to fix."""

import os

import dspy
import pytest

from pipeline.config import load_settings
from pipeline.errors import ConfigError
from pipeline.store import open_store
from pipeline.wiring import build_agent
from tests.pipeline.agent.scripting import ScriptLM, answer, select


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in [name for name in os.environ if name.startswith("TESSERA_") and name != "TESSERA_LM"]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_the_built_agent_has_every_tool_and_calls_the_bundled_mcp_server(tmp_path):
    settings = load_settings(store={"path": str(tmp_path / "s")}, tools={"max_steps": 3})
    with open_store(path=settings.store.path) as store:
        agent = build_agent(settings, store)
        try:
            names = agent.registry.names()
            assert {"search_documents", "calculator", "seat_cost", "convert_units", "ticket_status"} <= set(names)
            assert agent.max_steps == 3
            lm = ScriptLM([select("convert_units", '{"value": 5, "from_unit": "km", "to_unit": "mi"}'), select("answer"),
                           answer("5 km is 3.106856 miles.")])
            with dspy.context(lm=lm):
                prediction = agent(question="How many miles are 5 km?")
            assert prediction.steps[0]["result"] == "5 km = 3.106856 mi"
        finally:
            agent.close()


def test_an_allow_list_naming_an_unknown_tool_fails_at_start_up_listing_the_known_ones(tmp_path):
    settings = load_settings(store={"path": str(tmp_path / "s")}, tools={"allow": ["calculator", "web_search"]})
    with open_store(path=settings.store.path) as store, pytest.raises(ConfigError, match="web_search") as raised:
        build_agent(settings, store)
    assert "ticket_status" in str(raised.value) and "calculator" in str(raised.value)


def test_an_mcp_server_command_that_does_not_exist_is_a_start_up_error_naming_it(tmp_path):
    servers = [{"name": "broken", "command": "tessera-no-such-server"}]
    settings = load_settings(store={"path": str(tmp_path / "s")}, tools={"mcp_servers": servers})
    with open_store(path=settings.store.path) as store, pytest.raises(ConfigError, match="tessera-no-such-server"):
        build_agent(settings, store)
