"""What the agent loop carries from node to node: a `TypedDict` whose list fields grow through `operator.add`.

Each node returns only the keys it changes; LangGraph merges them with the reducers below. The step budget lives in
the state (`max_steps`), so the routers can end the loop without counting anything themselves.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict

StepKind = Literal["call", "correction", "repeat"]
Stopped = Literal["budget", "repeat"]


def add_seconds(left: dict[str, float] | None, right: dict[str, float] | None) -> dict[str, float]:
    """Seconds per stage, summed over the loop's turns (the selector runs once per step)."""
    merged = dict(left or {})
    for stage, seconds in (right or {}).items():
        merged[stage] = merged.get(stage, 0.0) + seconds
    return merged


class Step(TypedDict):
    """One turn of the loop as the selector, the trace and the user see it.

    `kind` is "call" for a tool that ran, "correction" for a choice that could not run (unknown tool, bad
    arguments; `result` says what to fix) and "repeat" for a call already made, which is not run again.
    """

    tool: str
    arguments: str
    result: str
    summary: str
    ok: bool
    kind: StepKind


class Action(TypedDict):
    """What the selector decided: run `tool`, go back to the selector (`retry`), or `answer`."""

    route: Literal["tool", "retry", "answer"]
    tool: str
    arguments: Any


class AgentState(TypedDict, total=False):
    question: str
    max_steps: int
    steps: Annotated[list[Step], operator.add]
    action: Action | None
    calls: Annotated[list[str], operator.add]  # a key per call that ran (`selection.call_key`), to stop repeats
    citations: Annotated[list[str], operator.add]
    hits: Annotated[list[Any], operator.add]
    guard_results: Annotated[list[Any], operator.add]
    unchecked: Annotated[int, operator.add]
    timings: Annotated[dict[str, float], add_seconds]
    answer: str
    blocked: bool
    stopped: Stopped | None


def initial_state(question: str, max_steps: int) -> AgentState:
    return AgentState(
        question=question, max_steps=max_steps, steps=[], action=None, calls=[], citations=[], hits=[], guard_results=[],
        unchecked=0, timings={}, answer="", blocked=False, stopped=None,
    )


def budget_left(state: AgentState) -> int:
    """Selector turns left: every step (a call, a correction, a stopped repeat) uses one."""
    return state["max_steps"] - len(state["steps"])
