"""Thin factories over DSPy's optimizers, every hyper-parameter an explicit argument.

Each factory returns an `Optimizer`: the DSPy teleprompter plus how to call its `compile` (whether it uses a
validation set) and the smallest train / validation sets it can work with, so a too-small eval set is
refused with the minimum before any LM call. `make_optimizer(name, metric, preset, **overrides)` picks one
by name; a preset (light / medium / heavy) sets the search effort the way MIPROv2's `auto` does.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dspy

PRESETS = ("light", "medium", "heavy")


@dataclass
class Optimizer:
    """A configured DSPy optimizer and what it needs from the eval set."""

    name: str
    teleprompter: Any
    min_train: int
    min_val: int = 0
    seed: int = 0

    @property
    def uses_valset(self) -> bool:
        return self.min_val > 0

    def check_sizes(self, train: int, val: int) -> None:
        """Refuse a train / validation split smaller than this optimizer needs, saying the minimum."""
        if train < self.min_train:
            raise ValueError(f"{self.name} needs at least {self.min_train} training examples; the split has {train}. Use a larger eval set or a larger --train share.")
        if val < self.min_val:
            raise ValueError(f"{self.name} needs at least {self.min_val} dev examples; the split has {val}. Use a larger eval set or a larger --dev share.")

    def compile(self, student: dspy.Module, trainset: list[dspy.Example], valset: list[dspy.Example]) -> dspy.Module:
        self.check_sizes(len(trainset), len(valset))
        if self.name == "simba":
            return self.teleprompter.compile(student, trainset=trainset, seed=self.seed)
        if self.name == "mipro":
            return self.teleprompter.compile(
                student, trainset=trainset, valset=valset, seed=self.seed, minibatch_size=min(35, len(valset))
            )
        if self.uses_valset:
            return self.teleprompter.compile(student, trainset=trainset, valset=valset)
        return self.teleprompter.compile(student, trainset=trainset)


def bootstrap_few_shot(
    metric: Callable,
    *,
    max_bootstrapped_demos: int = 4,
    max_labeled_demos: int = 4,
    max_rounds: int = 1,
    metric_threshold: float | None = 0.3,
    max_errors: int | None = None,
    seed: int = 0,
) -> Optimizer:
    """Few-shot demos from the program's own successful runs on the train split (one pass, no search).

    Slots the bootstrapped traces leave free (up to `max_labeled_demos`) take plain question → gold answer
    examples from the train split; they show a small LM the expected answer length and cost no LM call.
    """
    teleprompter = dspy.BootstrapFewShot(
        metric=metric,
        metric_threshold=metric_threshold,
        max_bootstrapped_demos=max_bootstrapped_demos,
        max_labeled_demos=max_labeled_demos,
        max_rounds=max_rounds,
        max_errors=max_errors,
    )
    return Optimizer("bootstrap", teleprompter, min_train=max(1, max_bootstrapped_demos), seed=seed)


def bootstrap_random_search(
    metric: Callable,
    *,
    max_bootstrapped_demos: int = 4,
    max_labeled_demos: int = 4,
    max_rounds: int = 1,
    num_candidate_programs: int = 8,
    num_threads: int = 1,
    metric_threshold: float | None = 0.3,
    stop_at_score: float | None = None,
    max_errors: int | None = None,
    seed: int = 0,
) -> Optimizer:
    """BootstrapFewShot over shuffled train orders; the candidate best on the dev split wins."""
    teleprompter = dspy.BootstrapFewShotWithRandomSearch(
        metric=metric,
        max_bootstrapped_demos=max_bootstrapped_demos,
        max_labeled_demos=max_labeled_demos,
        max_rounds=max_rounds,
        num_candidate_programs=num_candidate_programs,
        num_threads=num_threads,
        max_errors=max_errors,
        stop_at_score=stop_at_score,
        metric_threshold=metric_threshold,
    )
    return Optimizer("random_search", teleprompter, min_train=max(2, max_bootstrapped_demos), min_val=2, seed=seed)


def mipro(
    metric: Callable,
    *,
    auto: str = "light",
    prompt_model: dspy.BaseLM | None = None,
    task_model: dspy.BaseLM | None = None,
    max_bootstrapped_demos: int = 4,
    max_labeled_demos: int = 0,
    num_threads: int = 1,
    init_temperature: float = 1.0,
    metric_threshold: float | None = None,
    max_errors: int | None = None,
    seed: int = 9,
) -> Optimizer:
    """MIPROv2: proposed instructions × bootstrapped demo sets, searched with Optuna; `auto` sets the effort."""
    teleprompter = dspy.MIPROv2(
        metric=metric,
        prompt_model=prompt_model,
        task_model=task_model,
        auto=auto,
        max_bootstrapped_demos=max_bootstrapped_demos,
        max_labeled_demos=max_labeled_demos,
        num_threads=num_threads,
        init_temperature=init_temperature,
        metric_threshold=metric_threshold,
        max_errors=max_errors,
        seed=seed,
    )
    return Optimizer("mipro", teleprompter, min_train=2, min_val=2, seed=seed)


def gepa(
    metric: Callable,
    *,
    reflection_lm: dspy.BaseLM | None = None,
    auto: str | None = "light",
    max_metric_calls: int | None = None,
    reflection_minibatch_size: int = 3,
    candidate_selection_strategy: str = "pareto",
    use_merge: bool = True,
    num_threads: int = 1,
    seed: int = 0,
) -> Optimizer:
    """GEPA: a reflection LM rewrites instructions from the metric's textual feedback (use a feedback metric)."""
    if reflection_lm is None:
        reflection_lm = dspy.settings.lm
    if reflection_lm is None:
        raise ValueError("GEPA needs a reflection LM: pass --reflection-lm (any LiteLLM model string) or configure a task LM.")
    teleprompter = dspy.GEPA(
        metric=metric,
        reflection_lm=reflection_lm,
        auto=None if max_metric_calls is not None else auto,
        max_metric_calls=max_metric_calls,
        reflection_minibatch_size=reflection_minibatch_size,
        candidate_selection_strategy=candidate_selection_strategy,
        use_merge=use_merge,
        num_threads=num_threads,
        seed=seed,
    )
    return Optimizer("gepa", teleprompter, min_train=1, min_val=1, seed=seed)


def simba(
    metric: Callable,
    *,
    bsize: int = 8,
    num_candidates: int = 4,
    max_steps: int = 4,
    max_demos: int = 4,
    prompt_model: dspy.BaseLM | None = None,
    num_threads: int = 1,
    temperature_for_sampling: float = 0.2,
    temperature_for_candidates: float = 0.2,
    seed: int = 0,
) -> Optimizer:
    """SIMBA: mini-batches of hard examples, self-reflective rules and demos appended to the program."""
    teleprompter = dspy.SIMBA(
        metric=metric,
        bsize=bsize,
        num_candidates=num_candidates,
        max_steps=max_steps,
        max_demos=max_demos,
        prompt_model=prompt_model,
        num_threads=num_threads,
        temperature_for_sampling=temperature_for_sampling,
        temperature_for_candidates=temperature_for_candidates,
    )
    return Optimizer("simba", teleprompter, min_train=bsize, seed=seed)


OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {
    "bootstrap": bootstrap_few_shot,
    "random_search": bootstrap_random_search,
    "mipro": mipro,
    "gepa": gepa,
    "simba": simba,
}

# What light / medium / heavy mean for each optimizer (MIPROv2 and GEPA have DSPy's own `auto`).
PRESET_ARGS: dict[str, dict[str, dict[str, Any]]] = {
    "bootstrap": {"light": {"max_bootstrapped_demos": 2}, "medium": {"max_bootstrapped_demos": 4}, "heavy": {"max_bootstrapped_demos": 8, "max_rounds": 2}},
    "random_search": {"light": {"num_candidate_programs": 4}, "medium": {"num_candidate_programs": 8}, "heavy": {"num_candidate_programs": 16}},
    "mipro": {preset: {"auto": preset} for preset in PRESETS},
    "gepa": {preset: {"auto": preset} for preset in PRESETS},
    "simba": {"light": {"max_steps": 4}, "medium": {"max_steps": 8}, "heavy": {"max_steps": 12, "num_candidates": 6}},
}


def make_optimizer(name: str, metric: Callable, preset: str = "light", **overrides: Any) -> Optimizer:
    """The optimizer called `name` at `preset` effort, with any hyper-parameter overridden by keyword."""
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}. Valid optimizers: {', '.join(OPTIMIZERS)}.")
    if preset not in PRESETS:
        raise ValueError(f"Unknown budget preset {preset!r}. Valid presets: {', '.join(PRESETS)}.")
    factory = OPTIMIZERS[name]
    args = {**PRESET_ARGS[name][preset], **overrides}
    accepted = set(inspect.signature(factory).parameters) - {"metric"}
    unknown = sorted(set(args) - accepted)
    if unknown:
        raise ValueError(f"{name} has no hyper-parameter {', '.join(unknown)}. Valid: {', '.join(sorted(accepted))}.")
    return factory(metric, **args)
