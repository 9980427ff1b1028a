"""The programs a compile can optimize, each with how it is built, the eval set it is scored on by default, its
default objective and the metrics reported beside it. `scripts/compile.py --program NAME` picks one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import dspy

from optimizers.evaluation import REPORTED
from optimizers.metrics.agent import AGENT_METRICS
from optimizers.metrics.answer import METRICS
from pipeline.errors import ConfigError


@dataclass(frozen=True)
class ProgramSpec:
    """`build(settings, store)` makes the uncompiled program; `load(path)` reads an eval set as examples."""

    name: str
    build: Callable[..., dspy.Module]
    load: Callable[[Path], list[dspy.Example]]
    default_eval_set: Callable[[], Path]
    metric: Mapping[str, float]
    reported: Mapping[str, Callable]


def _build_rag(settings, store) -> dspy.Module:
    from pipeline.wiring import build_rag

    return build_rag(settings, store)


def _build_agent(settings, store) -> dspy.Module:
    from pipeline.wiring import build_agent

    return build_agent(settings, store)


def _load_qa(path: Path) -> list[dspy.Example]:
    from pipeline.qa_set import load_qa

    return load_qa(path)


def _load_agent_tasks(path: Path) -> list[dspy.Example]:
    from pipeline.agent.tasks import load_agent_tasks

    return load_agent_tasks(path)


def _demo_qa() -> Path:
    from pipeline.qa_set import DEMO_QA

    return DEMO_QA


def _agent_tasks() -> Path:
    from pipeline.agent.tasks import bundled_agent_tasks

    return bundled_agent_tasks()


PROGRAMS: dict[str, ProgramSpec] = {
    "rag": ProgramSpec("rag", _build_rag, _load_qa, _demo_qa, {"token_f1": 1.0},
                       {name: METRICS[name] for name in REPORTED}),
    "agent": ProgramSpec("agent", _build_agent, _load_agent_tasks, _agent_tasks,
                         {"answer_correctness": 0.7, "tool_selection": 0.3}, dict(AGENT_METRICS)),
}


def program_spec(name: str) -> ProgramSpec:
    try:
        return PROGRAMS[name]
    except KeyError:
        raise ConfigError(f"Unknown program {name!r}. Valid programs: {', '.join(PROGRAMS)}.") from None
