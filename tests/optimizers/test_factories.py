"""Each optimizer factory compiles the RAG program end to end on a scripted LM; names and sizes are checked."""

import dspy
import pytest

from optimizers.budget import LMMeter
from optimizers.compile import compile_program
from optimizers.factories import OPTIMIZERS, make_optimizer
from optimizers.metrics.answer import METRICS
from optimizers.metrics.composite import WeightedMetric


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("bootstrap", {"metric_threshold": None}),
        ("random_search", {"num_candidate_programs": 2, "metric_threshold": None}),
        ("mipro", {}),
        ("simba", {"bsize": 4, "num_candidates": 2, "max_steps": 2}),
        ("gepa", {"max_metric_calls": 30}),
    ],
)
def test_every_optimizer_compiles_the_rag_program(name, overrides, field_lm, toy_rag, qa_examples):
    metric = WeightedMetric({"token_f1": 1.0}, feedback=name == "gepa")
    optimizer = make_optimizer(name, metric, "light", **overrides)
    meter = LMMeter()
    outcome = compile_program(optimizer, toy_rag, qa_examples[:5], qa_examples[5:], meter)
    program = outcome.program
    assert outcome.stopped_by_budget is None
    assert isinstance(program, type(toy_rag)) and program is not toy_rag
    assert meter.calls > 0
    changed = program.generate.demos or program.generate.signature.instructions != toy_rag.generate.signature.instructions
    assert changed, f"{name} left the program as it was"
    assert program(question="Which port does the proxy listen on?").answer


def test_unknown_optimizer_lists_the_valid_ones():
    with pytest.raises(ValueError, match="Valid optimizers: bootstrap, random_search, mipro, gepa, simba"):
        make_optimizer("adam", METRICS["token_f1"])


def test_unknown_hyper_parameter_lists_the_valid_ones():
    with pytest.raises(ValueError, match="bootstrap has no hyper-parameter max_demoz. Valid: .*max_bootstrapped_demos"):
        make_optimizer("bootstrap", METRICS["token_f1"], max_demoz=3)


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="Valid presets: light, medium, heavy"):
        make_optimizer("mipro", METRICS["token_f1"], "extreme")


def test_too_small_a_split_names_the_minimum(toy_rag, qa_examples):
    optimizer = make_optimizer("simba", METRICS["token_f1"])
    with pytest.raises(ValueError, match="simba needs at least 8 training examples; the split has 3"):
        compile_program(optimizer, toy_rag, qa_examples[:3], qa_examples[3:], LMMeter())


def test_presets_set_the_search_effort(field_lm):
    assert make_optimizer("mipro", METRICS["token_f1"], "medium").teleprompter.auto == "medium"
    light = make_optimizer("random_search", METRICS["token_f1"], "light").teleprompter
    heavy = make_optimizer("random_search", METRICS["token_f1"], "heavy").teleprompter
    assert light.num_candidate_sets < heavy.num_candidate_sets
    assert set(OPTIMIZERS) == {"bootstrap", "random_search", "mipro", "gepa", "simba"}


def test_gepa_needs_a_reflection_lm():
    with dspy.context(lm=None), pytest.raises(ValueError, match="reflection LM"):
        make_optimizer("gepa", METRICS["token_f1"])
