"""A tool is a typed function: a bad one fails when it is made; arguments bind leniently; a call never raises."""

import time

import pytest

from pipeline.errors import ConfigError
from pipeline.tools.base import Tool, ToolError, ToolResult, tool


@tool
def seat_cost(plan: str, seats: int, annual: bool = False, discount: float | None = None) -> dict:
    """Price a plan.

    Args:
        plan: the plan name.
        seats: how many seats.
        annual: billed yearly.
        discount: percent off,
            applied last.
    """
    return {"plan": plan, "seats": seats, "annual": annual, "discount": discount}


def no_docstring(x: str) -> str:
    return x


def unannotated(x) -> str:
    """Does x.

    Args:
        x: a value.
    """
    return x


def unsupported(xs: list[str]) -> str:
    """Does xs.

    Args:
        xs: values.
    """
    return ""


def undocumented(x: str, y: int) -> str:
    """Does x and y.

    Args:
        x: a value.
    """
    return x


def over_documented(x: str) -> str:
    """Does x.

    Args:
        x: a value.
        z: not a parameter.
    """
    return x


def variadic(*xs: str) -> str:
    """Does xs.

    Args:
        xs: values.
    """
    return ""


@pytest.mark.parametrize(
    ("func", "message"),
    [(no_docstring, "needs a docstring"), (unannotated, "'x' needs a type annotation"),
     (unsupported, "'xs' is list\\[str\\]; use str, int, float or bool"),
     (undocumented, "'y' is not described in the docstring"), (over_documented, "describes \\['z'\\]"),
     (variadic, "\\*args/\\*\\*kwargs")],
)
def test_a_bad_tool_fails_when_it_is_made(func, message):
    with pytest.raises(ConfigError, match=message):
        Tool.from_function(func)


def test_a_bad_name_fails_when_the_tool_is_made():
    with pytest.raises(ConfigError, match="lower_snake_case"):
        Tool.from_function(seat_cost.func, name="Seat Cost")


def test_the_schema_comes_from_annotations_and_the_args_section():
    assert seat_cost.description == "Price a plan."
    assert seat_cost.schema() == {
        "type": "object",
        "properties": {
            "plan": {"type": "string", "description": "the plan name."},
            "seats": {"type": "integer", "description": "how many seats."},
            "annual": {"type": "boolean", "description": "billed yearly."},
            "discount": {"type": "number", "description": "percent off, applied last."},
        },
        "required": ["plan", "seats"],
    }
    assert seat_cost.signature_text() == (
        "seat_cost(plan: string, seats: integer, annual: boolean?, discount: number?) - Price a plan."
    )


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [({"plan": "Team", "seats": "12"}, {"seats": 12}), ({"plan": "Team", "seats": "1,200"}, {"seats": 1200}),
     ({"plan": "Team", "seats": 12.0}, {"seats": 12}), ({"plan": "Team", "seats": 3, "annual": "yes"}, {"annual": True}),
     ({"plan": "Team", "seats": 3, "discount": "7.5"}, {"discount": 7.5}),
     ('{"plan": "Team", "seats": 4}', {"seats": 4}), ({"plan": 42, "seats": 1}, {"plan": "42"})],
)
def test_arguments_bind_leniently(arguments, expected):
    bound = seat_cost.bind(arguments)
    assert {key: bound[key] for key in expected} == expected


@pytest.mark.parametrize(
    ("arguments", "message"),
    [({"plan": "Team", "seats": "12.5"}, "'seats' must be integer, got '12.5'"),
     ({"plan": "Team", "seats": True}, "'seats' must be integer"),
     ({"plan": "Team"}, "needs 'seats' \\(integer\\): how many seats."),
     ({"plan": "Team", "seats": 1, "colour": "red"}, "no argument\\(s\\) \\['colour'\\]"),
     ({"plan": "Team", "seats": 1, "annual": "maybe"}, "'annual' must be boolean"),
     ('{"plan": ', "not valid JSON"), ("Team", "takes a JSON object")],
)
def test_bad_arguments_become_a_failed_result_saying_what_to_fix(arguments, message):
    result = seat_cost.run(arguments)
    assert not result.ok
    assert result.text.startswith("error: ")
    assert __import__("re").search(message, result.text), result.text


def test_a_bare_string_goes_to_the_only_required_string_parameter():
    @tool
    def shout(text: str, times: int = 1) -> str:
        """Shout.

        Args:
            text: what to shout.
            times: how often.
        """
        return text.upper() * times

    assert shout.run("hi").text == "HI"
    assert shout.run({"text": "hi", "times": "2"}).text == "HIHI"


def test_results_are_text_for_the_lm_and_keep_the_value():
    result = seat_cost.run({"plan": "Team", "seats": 2})
    assert result.ok
    assert result.text == '{"plan": "Team", "seats": 2, "annual": false, "discount": null}'
    assert result.data["seats"] == 2


def test_an_exception_or_a_timeout_becomes_a_message_not_a_crash():
    @tool
    def broken(x: str) -> str:
        """Breaks.

        Args:
            x: ignored.
        """
        raise KeyError("plan")

    @tool
    def refuses(x: str) -> str:
        """Refuses.

        Args:
            x: ignored.
        """
        raise ToolError("no plan called Gold; the plans are Team and Business")

    @tool(timeout_s=0.2)
    def hangs(x: str) -> str:
        """Hangs.

        Args:
            x: ignored.
        """
        time.sleep(5)
        return x

    assert broken.run("a") == ToolResult("error: broken failed (KeyError: 'plan')", ok=False)
    assert refuses.run("a").text == "error: no plan called Gold; the plans are Team and Business"
    started = time.perf_counter()
    result = hangs.run("a")
    assert time.perf_counter() - started < 2
    assert not result.ok and result.text == "error: hangs did not answer within 0.2 s"


def test_a_tool_may_return_a_tool_result_with_citations():
    @tool
    def cite(x: str) -> ToolResult:
        """Cites.

        Args:
            x: a chunk id.
        """
        return ToolResult("passage", citations=(x,))

    assert cite.run("c1").citations == ("c1",)


def test_summary_is_one_short_line():
    assert ToolResult("a\n b   c").summary() == "a b c"
    assert len(ToolResult("x" * 500).summary(40)) == 40
