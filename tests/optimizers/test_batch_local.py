"""The local batch engine: every example one row with its scores and why it failed, retriever-only without an LM,
judges that fail on some rows, threads that change nothing but speed, and the regression gate."""

import json

import dspy
import pytest

from optimizers.batch.eval_sets import load_eval_set
from optimizers.batch.local_engine import evaluate_rows
from optimizers.batch.records import (
    GENERATOR_FAILED,
    RAISED,
    REFUSED,
    RETRIEVAL_MISSED,
    failure_class,
    metric_names,
)
from optimizers.batch.summary import format_summary, gate, markdown_report, summarize
from optimizers.batch.target import EvaluationTarget, load_target
from optimizers.judges import make_judge
from pipeline.config import Settings
from pipeline.errors import ConfigError, EvalSetError, TesseraError
from pipeline.lm.scripted import FieldLM, default_reply

RAG_METRICS = metric_names("rag")


def target_of(program, lm=None):
    return EvaluationTarget("toy", "rag", program, Settings(), None, lm or FieldLM(), None)


def test_every_example_is_one_row_in_order_with_its_scores(toy_rag, qa_examples):
    rows = evaluate_rows(target_of(toy_rag), qa_examples, RAG_METRICS)

    assert [row["id"] for row in rows] == [example.id for example in qa_examples]
    admin = rows[2]  # "Which port does the admin API listen on?" -> ports.md
    assert admin["sources"] == ["ports.md"] and admin["recall@5"] == 1.0 and admin["mrr"] == 1.0
    assert admin["answer"] == "The admin API listens on port 9180."
    assert 0 < admin["token_f1"] < 1 and admin["error"] == ""
    # The scripted answer is a whole sentence, the gold a phrase: the right document was in hand, the answer not.
    assert admin["failure"] == GENERATOR_FAILED


def test_threads_change_nothing_but_speed(toy_rag, qa_examples):
    one = evaluate_rows(target_of(toy_rag), qa_examples, RAG_METRICS, threads=1)
    four = evaluate_rows(target_of(toy_rag), qa_examples, RAG_METRICS, threads=4)

    assert one == four


def test_a_failing_example_is_counted_not_fatal(flaky_rag, qa_examples):
    done = []
    rows = evaluate_rows(target_of(flaky_rag("port")), qa_examples, RAG_METRICS, threads=2,
                         progress=lambda finished, total: done.append((finished, total)))

    failed = [row for row in rows if row["failure"] == RAISED]
    assert {row["id"] for row in failed} == {"q2", "q3"}  # the two questions naming "port"
    assert all(row["error"] == "RuntimeError: store went away" and row["token_f1"] == 0.0 for row in failed)
    summary = summarize("flaky", rows, RAG_METRICS)
    assert summary.errors == 2 and "2 raised" in format_summary(summary)
    assert done[-1] == (8, 8)


def test_retriever_only_scores_retrieval_and_calls_no_lm(toy_rag, qa_examples):
    lm = FieldLM()
    with dspy.context(lm=lm):
        rows = evaluate_rows(target_of(toy_rag, lm), qa_examples, metric_names("rag", retriever_only=True),
                             retriever_only=True)

    assert lm.calls == 0
    assert set(rows[0]) >= {"recall@5", "mrr", "ndcg@5"} and "token_f1" not in rows[0]
    assert all(row["answer"] == "" for row in rows)
    assert summarize("toy", rows, ["recall@5"]).metrics[0].mean == 1.0


def test_a_judge_lm_failing_on_some_rows_marks_them_failed_and_the_job_goes_on(toy_rag, qa_examples):
    def reply(name, kind, prompt, coached=False):
        if name == "score" and "port" in prompt:
            raise ConnectionError("judge provider unavailable")
        return "0.9" if name == "score" else default_reply(name, kind, prompt, coached)

    rows = evaluate_rows(target_of(toy_rag), qa_examples, RAG_METRICS, threads=2,
                         judges={"correctness": make_judge("correctness")}, judge_lm=FieldLM(reply))

    failed = [row for row in rows if row["error"]]
    assert len(failed) == 2 and all("judge provider unavailable" in row["error"] for row in failed)
    assert all(row["correctness"] == 0.9 for row in rows if not row["error"])
    summary = summarize("judged", rows, [*RAG_METRICS, "correctness"])
    assert summary.errors == 2 and summary.metrics[-1].name == "correctness"


@pytest.mark.parametrize(
    ("record", "scores", "error", "expected"),
    [
        ({"sources": ["a.md"], "blocked": False}, {"token_f1": 0.9}, "", ""),
        ({"sources": ["a.md"]}, {}, "TimeoutError: LM", RAISED),
        ({"sources": [], "blocked": True}, {"token_f1": 0.0}, "", REFUSED),
        ({"sources": ["b.md"], "blocked": False}, {"token_f1": 0.1}, "", RETRIEVAL_MISSED),
        ({"sources": ["b.md", "a.md"], "blocked": False}, {"token_f1": 0.1}, "", GENERATOR_FAILED),
    ],
)
def test_failures_are_classified_by_where_they_happened(record, scores, error, expected):
    assert failure_class("rag", record, scores, error=error, gold_sources=["a.md"]) == expected


def rows_of(scores):
    return [{"id": f"q{i}", "question": f"q{i}", "answer": "", "error": "", "failure": "", "token_f1": value}
            for i, value in enumerate(scores)]


def test_the_gate_fails_a_candidate_worse_beyond_the_tolerance_and_noise():
    baseline = rows_of([0.8, 0.7, 0.9, 0.8, 0.75, 0.85, 0.8, 0.7])
    worse = rows_of([0.5, 0.4, 0.6, 0.5, 0.45, 0.55, 0.5, 0.4])

    summary = gate(summarize("cand", worse, ["token_f1"]), "base", baseline, worse, 0.02)
    assert [c.metric for c in summary.regressions] == ["token_f1"]
    assert "REGRESSION beyond 0.02: token_f1 -0.300" in format_summary(summary)
    assert "**REGRESSION beyond 0.02" in markdown_report(summary, worse)


def test_the_gate_passes_a_drop_within_the_tolerance_or_the_noise():
    baseline = rows_of([0.8, 0.7, 0.9, 0.8])
    slightly = rows_of([0.79, 0.69, 0.89, 0.79])
    noisy = rows_of([0.2, 1.0, 0.9, 0.3])

    assert gate(summarize("c", slightly, ["token_f1"]), "b", baseline, slightly, 0.02).regressions == []
    assert gate(summarize("c", noisy, ["token_f1"]), "b", baseline, noisy, 0.0).regressions == []


def test_the_report_lists_each_failed_example_with_its_cause(flaky_rag, qa_examples):
    rows = evaluate_rows(target_of(flaky_rag("port")), qa_examples, RAG_METRICS)
    report = markdown_report(summarize("flaky", rows, RAG_METRICS), rows)

    failed = sum(1 for row in rows if row["failure"])
    assert failed >= 2 and f"## Failed examples: {failed} of 8" in report
    assert "| q2 | error | Which port does the admin API listen on? |  | RuntimeError: store went away |" in report
    assert "- 2 the program, a metric or a judge raised" in report


def test_an_eval_set_of_the_other_kind_is_refused_naming_both(tmp_path):
    from pipeline.agent.tasks import bundled_agent_tasks

    with pytest.raises(EvalSetError, match="holds agent tasks .* but the program is the rag program"):
        load_eval_set(bundled_agent_tasks(), "rag")
    bad = tmp_path / "qa.jsonl"
    bad.write_text(json.dumps({"question": "Which port?", "answer": "9180"}) + "\n", encoding="utf-8")
    with pytest.raises(EvalSetError, match="line 1: missing sources"):
        load_eval_set(bad, "rag")
    parquet = tmp_path / "questions.parquet"
    parquet.touch()
    with pytest.raises(EvalSetError, match="reads JSONL .* use --engine spark"):
        load_eval_set(parquet, "rag")


def test_a_model_that_does_not_exist_is_a_clear_error(tmp_path):
    settings = Settings(store={"path": str(tmp_path / "store")})
    with pytest.raises(TesseraError, match="Cannot find models:/no-such-model/1 in the model registry"):
        load_target("models:/no-such-model/1", settings)
    with pytest.raises(TesseraError, match="No registered model version comes from runs:/"):
        load_target("runs:/" + "0" * 32 + "/model", settings)
    with pytest.raises(ConfigError, match="Program file missing.json does not exist"):
        load_target("missing.json", settings)
    with pytest.raises(ConfigError, match="is not a model Tessera can evaluate"):
        load_target("runs:/not-a-run", settings)
