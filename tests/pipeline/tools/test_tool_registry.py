"""The registry: the allow-list at start-up, side effects off by default, loose tool names from an LM."""

import pytest

from pipeline.errors import ConfigError
from pipeline.tools.base import tool
from pipeline.tools.calculator import calculator
from pipeline.tools.registry import ToolRegistry


@tool
def search_documents(query: str) -> str:
    """Search the product documentation.

    Args:
        query: what to look for.
    """
    return f"found {query}"


@tool(side_effects=True)
def open_ticket(title: str) -> str:
    """Open a support ticket.

    Args:
        title: the ticket title.
    """
    return f"opened {title}"


def test_side_effecting_tools_are_off_unless_allowed_by_name():
    registry = ToolRegistry([calculator, search_documents, open_ticket])
    assert registry.names() == ["calculator", "search_documents"]
    assert "open_ticket" not in registry
    allowed = ToolRegistry([calculator, search_documents, open_ticket], allow=["open_ticket", "calculator"])
    assert allowed.names() == ["open_ticket", "calculator"]
    assert allowed.call("open_ticket", {"title": "x"}).text == "opened x"


def test_an_allow_list_naming_an_unknown_tool_fails_at_start_up_listing_the_known_ones():
    with pytest.raises(ConfigError) as caught:
        ToolRegistry([calculator, search_documents], allow=["calculator", "web_search"])
    assert "web_search" in str(caught.value)
    assert "calculator" in str(caught.value) and "search_documents" in str(caught.value)


def test_duplicate_names_are_an_error():
    with pytest.raises(ConfigError, match="two tools are named 'calculator'"):
        ToolRegistry([calculator, calculator])


def test_describe_lists_one_signature_per_allowed_tool():
    lines = ToolRegistry([calculator, search_documents, open_ticket]).describe().splitlines()
    assert lines[0].startswith("calculator(expression: string) - Evaluate")
    assert lines[1].startswith("search_documents(query: string) - Search")
    assert len(lines) == 2


@pytest.mark.parametrize(
    "written",
    ["search_documents", "Search_Documents", "'search_documents'", "`search_documents`", "search documents",
     "search-documents", "search_documents()", ' "search_documents()" ', "search_documents(query='x')", "**search_documents**"],
)
def test_resolve_forgives_how_an_lm_writes_a_name(written):
    assert ToolRegistry([calculator, search_documents]).resolve(written) == "search_documents"


@pytest.mark.parametrize("written", ["web_search", "", "search", None, "open_ticket"])
def test_resolve_returns_none_for_a_tool_that_is_not_allowed(written):
    assert ToolRegistry([calculator, search_documents, open_ticket]).resolve(written) is None


def test_calling_an_unknown_tool_is_a_failed_result_listing_the_allowed_ones():
    result = ToolRegistry([calculator, search_documents]).call("web_search", {"query": "x"})
    assert not result.ok
    assert "web_search" in result.text and "calculator, search_documents" in result.text


def test_call_resolves_the_name_and_runs_the_tool():
    assert ToolRegistry([calculator]).call("Calculator()", {"expression": "2 + 2"}).text == "4"


def test_get_names_the_allowed_tools_when_missing():
    registry = ToolRegistry([calculator])
    assert registry.get("calculator") is calculator
    with pytest.raises(KeyError, match="calculator"):
        registry.get("nope")
