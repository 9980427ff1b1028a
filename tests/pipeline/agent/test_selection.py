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


def test_arguments_copied_from_a_demo_give_way_to_the_question_or_a_correction(tools):
    import dspy

    from pipeline.agent.selection import Choice, ground

    demos = [dspy.Example(question="How do I rotate keys?", tool="lookup", arguments='{"query": "rotate keys"}'),
             dspy.Example(question="What is 2 times 3?", tool="multiply", arguments='{"a": 2, "b": 3}')]
    lookup, multiply = tools.get("lookup"), tools.get("multiply")
    copied = ground(Choice("lookup", {"query": "rotate keys"}), lookup, "Where are the logs?", demos)
    assert copied == Choice("lookup", "Where are the logs?")
    same_question = ground(Choice("lookup", {"query": "rotate keys"}), lookup, "How do I rotate keys?", demos)
    assert same_question.arguments == {"query": "rotate keys"}
    own = ground(Choice("lookup", {"query": "log files"}), lookup, "Where are the logs?", demos)
    assert own.arguments == {"query": "log files"}
    two_numbers = ground(Choice("multiply", {"a": 2, "b": 3}), multiply, "What is 4 times 5?", demos)
    assert two_numbers.error and "an example's" in two_numbers.error


def test_missing_arguments_for_a_one_text_tool_are_the_question(tools):
    from pipeline.agent.selection import ground

    choice = choose(tools, "lookup", "")
    assert choice.error
    assert ground(choice, tools.get("lookup"), "Where are the logs?", []).arguments == "Where are the logs?"


def test_a_wrong_name_with_arguments_only_one_tool_takes_picks_that_tool(tools):
    assert choose(tools, "addon_price", '{"a": 3, "b": 4}').tool == "multiply"
    assert choose(tools, "addon_price", '{"query": "x"}').tool is None  # lookup, broken and slow all take a query


def test_demos_nearest_the_question_and_its_stage_come_last(tools):
    import dspy

    from pipeline.agent.selection import nearest_demos

    demos = [dspy.Example(question="Hello, who are you?", steps="(none yet)"),
             dspy.Example(question="What is 12 multiplied by 7?", steps="(none yet)"),
             dspy.Example(question="How do I rotate the admin API key?", steps="(none yet)"),
             dspy.Example(question="What is 12 multiplied by 7?", steps="1. calculator(12 * 7) -> 84")]
    first = nearest_demos(demos, "What is 1234 multiplied by 5678?", 0, 2)
    assert [d.question for d in first][-1] == "What is 12 multiplied by 7?" and "steps" in first[-1]
    assert first[-1].steps == "(none yet)"
    assert nearest_demos(demos, "How do I configure rate limiting?", 0, 1)[0].question.startswith("How do I")
    assert nearest_demos(demos, "What is 1234 multiplied by 5678?", 1, 1)[0].steps.startswith("1.")


def test_misnamed_arguments_for_a_one_text_tool_are_the_question(tools):
    from pipeline.agent.selection import ground

    choice = choose(tools, "lookup", '{"query": "port to", "port to": "admin_api_port"}')
    assert "no argument" in choice.error
    assert ground(choice, tools.get("lookup"), "Which port?", []).arguments == "Which port?"


def test_arguments_that_fit_another_tool_than_the_one_named_choose_that_tool(tools):
    choice = choose(tools, "lookup", '{"a": 3, "b": 4}')
    assert choice.tool == "multiply" and choice.error is None
