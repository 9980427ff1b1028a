"""build_tools: the registry the settings describe (search, calculator, SQL functions, extra tools, allow-list)."""

import pytest

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.retrieval.guarded import Retrieved
from pipeline.tools.base import tool
from pipeline.wiring import build_tools


class NoPassages:
    """Stands in for GuardedRetrieval (no store, no models): finds nothing."""

    def __call__(self, query, *, filter=None):
        return Retrieved(hits=[])


@tool(side_effects=True)
def open_ticket(title: str) -> str:
    """Open a support ticket.

    Args:
        title: the ticket title.
    """
    return "opened"


def test_the_default_registry_has_search_the_calculator_and_the_sql_functions():
    registry = build_tools(Settings(), store=None, retrieval=NoPassages(), extra=[open_ticket])
    names = registry.names()
    assert names[:2] == ["search_documents", "calculator"]
    assert {"seat_cost", "list_plans", "regional_price"} <= set(names)
    assert "open_ticket" not in names
    assert "monthly_cost_usd: 348" in registry.call("seat_cost", {"plan": "Team", "seats": 12}).text
    assert registry.call("calculator", {"expression": "1234 * 5678"}).text == "7006652"
    assert registry.call("search_documents", {"query": "ports"}).text.startswith("no passages found")


def test_the_allow_list_chooses_the_tools_and_names_the_known_ones_when_wrong():
    settings = Settings(tools={"allow": ["calculator", "open_ticket"]})
    assert build_tools(settings, None, NoPassages(), extra=[open_ticket]).names() == ["calculator", "open_ticket"]
    with pytest.raises(ConfigError, match=r"unknown tool\(s\) \['web_search'\].*'calculator'.*'seat_cost'"):
        build_tools(Settings(tools={"allow": ["web_search"]}), None, NoPassages())


def test_sql_functions_can_be_turned_off():
    names = build_tools(Settings(tools={"sql": {"enabled": False}}), None, NoPassages()).names()
    assert names == ["search_documents", "calculator"]
