"""Reading the selector's reply: loose tool names and argument shapes a small LM writes are understood; anything
that cannot run becomes a message naming what to fix."""

import pytest

from pipeline.agent.selection import call_key, choose, parse_arguments, transcript


@pytest.mark.parametrize("written", ["multiply", "Multiply", "`multiply`", "multiply()", '"multiply"', "use multiply"])
def test_tool_names_written_loosely_resolve_to_the_allowed_tool(tools, written):
    assert choose(tools, written, '{"a": 1, "b": 2}').tool == "multiply"


@pytest.mark.parametrize("written", ["answer", "Answer.", "finish", "Final answer", "", None, "none"])
def test_answer_words_and_an_empty_tool_mean_answer_now(tools, written):
    choice = choose(tools, written, "")
    assert choice.tool is None and choice.error is None


def test_a_made_up_tool_is_an_error_listing_the_allowed_tools(tools):
    choice = choose(tools, "web_search", "{}")
    assert choice.tool is None and "there is no tool 'web_search'" in choice.error
    assert "multiply, lookup, broken, slow, fetch, contact" in choice.error


@pytest.mark.parametrize("written, expected", [
    ('{"a": 6, "b": 7}', {"a": 6, "b": 7}),
    ("{'a': 6, 'b': 7}", {"a": 6, "b": 7}),
    ('{"a": 6, "b": 7', {"a": 6, "b": 7}),
    ('{"a": 6, "b": 7} and then I will answer', {"a": 6, "b": 7}),
    ("a: 6, b: 7", {"a": "6", "b": "7"}),
    ("a=6\nb=7", {"a": "6", "b": "7"}),
    ("```json\n{\"a\": 6, \"b\": 7}\n```", {"a": 6, "b": 7}),
    ("{}", {}),
])
def test_argument_shapes_a_small_lm_writes_are_read(tools, written, expected):
    assert parse_arguments(written, tools.get("multiply")) == expected


def test_a_bare_text_goes_to_the_only_required_parameter(tools):
    choice = choose(tools, "lookup", "rotate the admin key\nThen answer.")
    assert choice.error is None and tools.get("lookup").bind(choice.arguments) == {"query": "rotate the admin key"}


def test_arguments_written_inside_the_tool_name_are_used(tools):
    choice = choose(tools, "lookup(rotate keys)", "")
    assert choice.tool == "lookup" and tools.get("lookup").bind(choice.arguments) == {"query": "rotate keys"}


def test_missing_or_mistyped_arguments_are_an_error_that_shows_the_signature(tools):
    missing = choose(tools, "multiply", '{"a": 2}')
    assert missing.tool == "multiply" and "needs 'b'" in missing.error and "multiply(a: integer, b: integer)" in missing.error
    assert "must be integer" in choose(tools, "multiply", '{"a": "two", "b": 2}').error


def test_the_same_call_written_two_ways_has_one_key(tools):
    multiply = tools.get("multiply")
    assert call_key(multiply, {"a": 2, "b": 3}) == call_key(multiply, '{"b": "3", "a": 2}')
    assert call_key(multiply, {"a": 2, "b": 3}) != call_key(multiply, {"a": 3, "b": 2})


def test_the_transcript_numbers_steps_and_cuts_long_results():
    steps = [{"tool": "lookup", "arguments": '{"query": "x"}', "result": "y" * 50, "summary": "", "ok": True, "kind": "call"}]
    assert transcript([]) == "(none yet)"
    text = transcript(steps, max_chars=10)
    assert text.startswith('1. lookup({"query": "x"}) -> yyyyyyyyy…') and len(text) < 40
