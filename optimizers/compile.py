"""Compile a program under a budget: the optimizer runs until it finishes or the budget stops it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import dspy

from optimizers.budget import BudgetExhausted, LMMeter
from optimizers.factories import Optimizer

log = logging.getLogger(__name__)


@dataclass
class CompileOutcome:
    program: dspy.Module
    seconds: float
    stopped_by_budget: str | None = None
    kept: str = "optimizer result"


def compile_program(optimizer: Optimizer, student: dspy.Module, trainset: list, valset: list, meter: LMMeter) -> CompileOutcome:
    """Run the optimizer with every LM call metered; when the budget stops it, keep the best program so far.

    "Best so far", in order: BootstrapFewShot's demos gathered before the stop; else the best program any
    optimizer evaluated in full (random search candidates, MIPROv2 full evaluations, GEPA validation runs);
    else the uncompiled program.
    """
    started = time.perf_counter()
    try:
        with meter.active():
            program = optimizer.compile(student, trainset, valset)
        return CompileOutcome(program, time.perf_counter() - started)
    except BudgetExhausted as stop:
        log.warning("%s; keeping the best program found so far", stop)
        program, kept = _best_so_far(optimizer, student, meter)
        return CompileOutcome(program, time.perf_counter() - started, stopped_by_budget=meter.exhausted_by, kept=kept)


def _best_so_far(optimizer: Optimizer, student: dspy.Module, meter: LMMeter) -> tuple[dspy.Module, str]:
    teleprompter = optimizer.teleprompter
    traces = getattr(teleprompter, "name2traces", None)
    if isinstance(teleprompter, dspy.BootstrapFewShot) and traces and any(traces.values()):
        if not hasattr(teleprompter, "validation"):
            teleprompter.validation = []  # set at the end of a finished bootstrap pass; only labelled demos use it
        teleprompter._train()
        program = teleprompter.student
        program._compiled = True
        return program, f"{sum(map(len, traces.values()))} demos bootstrapped before the stop"
    candidate = meter.best_candidate()
    if candidate is not None:
        return candidate.program, f"best of {len(meter.candidates)} evaluated candidates (score {candidate.score:.3f})"
    return student, "the uncompiled program (no candidate was complete when the budget ran out)"
