"""The bundled agent eval set: large enough, covering every kind of task and zero, one and two tool calls, naming
only tools Tessera ships, and with every gold fact found in what the planned calls return (the same check that
eval_sets/build_agent_tasks.py runs when it writes the file)."""

from collections import Counter

import pytest

from eval_sets import build_agent_tasks
from pipeline.agent.tasks import bundled_agent_tasks, load_agent_tasks

SHIPPED_TOOLS = {"search_documents", "calculator", "convert_units", "ticket_status"}


@pytest.fixture(scope="module")
def tasks():
    return load_agent_tasks(bundled_agent_tasks())


def rows(tasks):
    return [{**example.toDict()} for example in tasks]


def test_the_set_is_large_and_covers_every_kind_and_call_count(tasks):
    assert len(tasks) >= 80
    kinds = Counter(example.kind for example in tasks)
    assert set(kinds) == {"docs", "calculator", "sql", "mcp", "two_step", "no_tool", "refuse"}
    assert {len(example.tools) for example in tasks} == {0, 1, 2}
    assert kinds["refuse"] >= 3 and all(example.refuse == (example.kind == "refuse") for example in tasks)
    ids = [example.id for example in tasks]
    assert len(set(ids)) == len(ids) and all(ids)


def test_every_expected_tool_is_one_tessera_ships():
    from pipeline.tools.settings import BUNDLED_DATABASE, BUNDLED_FUNCTIONS
    from pipeline.tools.sql import sql_tools

    shipped = SHIPPED_TOOLS | {tool.name for tool in sql_tools(BUNDLED_DATABASE, BUNDLED_FUNCTIONS)}
    used = {name for example in load_agent_tasks() for name in example.tools}
    assert used <= shipped and {"search_documents", "calculator", "convert_units", "ticket_status"} <= used


def test_every_gold_fact_is_in_what_the_planned_calls_return(tasks):
    build_agent_tasks.check_tool_facts(rows(tasks))


def test_tasks_with_facts_state_them_in_their_gold_answer(tasks):
    from optimizers.metrics.agent import states

    unstated = [example.id for example in tasks for fact in example.facts if not states(example.answer, fact)]
    assert unstated == []


def test_refusals_are_blocked_and_every_other_question_passes_the_default_input_guard(tasks):
    build_agent_tasks.check_refusals(rows(tasks))
