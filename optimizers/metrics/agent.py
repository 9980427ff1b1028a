"""Agent metrics, one concept each, as `metric(example, pred, trace=None) -> float` over an agent task
(eval_sets/agent.jsonl: `tools`, `facts`, `refuse`) and an Agent prediction (`tools_called`, `answer`, `blocked`,
`steps`).

- `tool_selection`: 1.0 when the program called exactly the expected tools (as a multiset, order ignored), else 0.0.
- `answer_correctness`: the share of the task's facts the answer states; a task without facts scores 1.0 for an
  answer that is given (not refused, not empty).
- `refusals_respected`: 1.0 when the program refused exactly when the task must be refused, else 0.0.
- `steps_used`: how many steps the loop took (tool calls, corrections, stopped repeats): a count, reported, not a
  score to optimize.
"""

from __future__ import annotations

import re
from collections import Counter

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_TRAILING_ZEROS = re.compile(r"(?<=\d)\.0+\b")
_NOT_WORD = re.compile(r"(?:(?<!\d)\.|\.(?!\d)|[^\w.]|_)+")


def normalise_fact(text: str) -> str:
    """Lower-case words and numbers, separated by single spaces: thousands commas dropped, `.0` endings dropped,
    punctuation (underscores and hyphens too) made a space, decimal points kept: "7,006,652" and "7006652.0" read
    7006652, "round_robin" reads "round robin", "CVD-4091" reads "cvd 4091"."""
    if not isinstance(text, str):
        raise ValueError(f"a fact or answer must be a string, not {type(text).__name__}")
    text = _TRAILING_ZEROS.sub("", _THOUSANDS.sub("", text.lower()))
    return " ".join(_NOT_WORD.sub(" ", text).split())


def states(answer: str, fact: str) -> bool:
    """Whether `answer` states `fact`: the normalised words of the fact (or of one of its `|`-separated ways of
    saying it, "5 seconds|5s") appear in a row, on word boundaries."""
    said = f" {normalise_fact(answer)} "
    return any(f" {normalise_fact(way)} " in said for way in fact.split("|"))


def _task(example) -> tuple[list[str], list[str], bool]:
    tools, facts, refuse = example.get("tools"), example.get("facts"), example.get("refuse")
    if not isinstance(tools, list) or not isinstance(facts, list) or not isinstance(refuse, bool):
        raise ValueError("an agent task needs tools (list), facts (list) and refuse (true/false); "
                         "see eval_sets/agent.jsonl")
    return tools, facts, refuse


def tool_selection(example, pred, trace=None) -> float:
    tools, _, _ = _task(example)
    return float(Counter(getattr(pred, "tools_called", None) or []) == Counter(tools))


def answer_correctness(example, pred, trace=None) -> float:
    _, facts, refuse = _task(example)
    answer = str(getattr(pred, "answer", "") or "")
    if refuse:
        return float(bool(getattr(pred, "blocked", False)))
    if getattr(pred, "blocked", False):
        return 0.0
    if not facts:
        return float(bool(answer.strip()))
    return sum(states(answer, fact) for fact in facts) / len(facts)


def refusals_respected(example, pred, trace=None) -> float:
    _, _, refuse = _task(example)
    return float(bool(getattr(pred, "blocked", False)) == refuse)


def steps_used(example, pred, trace=None) -> float:
    return float(len(getattr(pred, "steps", None) or []))


AGENT_METRICS = {
    "tool_selection": tool_selection,
    "answer_correctness": answer_correctness,
    "refusals_respected": refusals_respected,
    "steps_used": steps_used,
}
