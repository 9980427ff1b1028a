"""One compile end to end on a scripted LM: splits, before/after table with CIs, the MLflow run and its model."""

import json

import dspy
import mlflow
import pytest

from optimizers.budget import Budget
from optimizers.compile import CompileRequest, parse_metric, run_compile
from optimizers.evaluation import paired_bootstrap_ci, split_examples
from optimizers.tracking import open_tracking
from pipeline.errors import ConfigError, EvalSetError
from pipeline.lm.scripted import FieldLM


@pytest.fixture
def eval_set(tmp_path, qa_examples):
    path = tmp_path / "qa.jsonl"
    rows = [
        {"id": f"{ex.id}-{copy}", "question": f"{ex.question}{' ' * copy}", "answer": ex.answer, "sources": ex.sources}
        for copy in range(2)
        for ex in qa_examples
    ]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    return path


def request(eval_set, tmp_path, **fields):
    return CompileRequest(eval_set=eval_set, train=4, dev=4, test=6, out_dir=tmp_path / "compiled", **fields)


def test_splits_depend_on_the_seed_not_on_the_file_order(qa_examples):
    first = split_examples(qa_examples, seed=3, train=2, dev=2, test=4)
    again = split_examples(list(reversed(qa_examples)), seed=3, train=2, dev=2, test=4)
    other = split_examples(qa_examples, seed=4, train=2, dev=2, test=4)
    ids = lambda split: [ex.id for ex in split.train + split.dev + split.test]
    assert ids(first) == ids(again) != ids(other)
    assert len(set(ids(first))) == 8


def test_too_large_splits_say_how_many_examples_there_are(qa_examples):
    with pytest.raises(ValueError, match="The eval set has 8 examples; train 4 \\+ dev 4 \\+ test 4 = 12 is more"):
        split_examples(qa_examples, seed=0, train=4, dev=4, test=4)


def test_bootstrap_ci_brackets_a_clear_gain_and_straddles_no_change():
    low, high = paired_bootstrap_ci([0.0] * 20, [1.0] * 15 + [0.0] * 5)
    assert 0.5 < low < 0.75 < high <= 1.0
    low, high = paired_bootstrap_ci([0, 1] * 10, [1, 0] * 10)
    assert low < 0 < high


def test_compile_logs_one_mlflow_run_with_params_metrics_artifacts_and_traces(field_lm, toy_rag, eval_set, tmp_path, tracked):
    report = run_compile(request(eval_set, tmp_path, hyperparameters={"metric_threshold": None}), toy_rag)
    run = mlflow.get_run(report.run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["optimizer"] == "bootstrap" and params["train_size"] == "4" and params["test_size"] == "6"
    assert params["seed"] == "0" and len(params["eval_set_hash"]) == 16
    metrics = run.data.metrics
    assert metrics["compiled.test.token_f1"] > metrics["baseline.test.token_f1"]  # demos coach the scripted LM
    assert metrics["compile_lm_calls"] == report.compile_meter.calls > 0
    assert {"delta_ci_low.test.objective", "eval_lm_calls", "wall_seconds"} <= set(metrics)
    artifacts = {a.path for a in mlflow.artifacts.list_artifacts(run_id=report.run_id)}
    assert {"per_example", "program", "results.txt"} <= artifacts
    table = json.loads(mlflow.artifacts.load_text(f"runs:/{report.run_id}/per_example/test.json"))
    assert len(table["data"]) == 6 and "compiled_answer" in table["columns"]
    traces = mlflow.search_traces(run_id=report.run_id, return_type="list")
    assert traces, "compile and evaluation traces are linked to the run"
    assert "on the held-out test split (objective 0.2" in report.summary()


def test_failed_examples_are_counted_per_split_logged_and_explained(field_lm, flaky_rag, eval_set, tmp_path, tracked):
    report = run_compile(request(eval_set, tmp_path, hyperparameters={"metric_threshold": None}), flaky_rag("port"))
    failed = {split: report.failures(split) for split in ("dev", "test")}
    assert sum(map(sum, failed.values())) > 0
    metrics = mlflow.get_run(report.run_id).data.metrics
    assert (metrics["errors.dev"], metrics["errors.test"]) == (sum(failed["dev"]), sum(failed["test"]))
    before, after = failed["test"]
    assert f"test {before} baseline, {after} compiled" in report.summary()
    table = json.loads(mlflow.artifacts.load_text(f"runs:/{report.run_id}/per_example/test.json"))
    errors = [row[table["columns"].index("baseline_error")] for row in table["data"]]
    assert errors.count("RuntimeError: store went away") == before and errors.count("") == len(errors) - before


def test_progress_goes_to_the_callback_not_to_stdout(field_lm, toy_rag, eval_set, tmp_path, capsys):
    events = []
    run_compile(request(eval_set, tmp_path), toy_rag, track=False, progress=lambda *event: events.append(event))
    stages = list(dict.fromkeys(stage for stage, _, _ in events))
    assert stages[:2] == ["baseline on dev (4 examples)", "baseline on test (6 examples)"]
    assert stages[2].startswith("compiling with bootstrap (light) on 4 train / 4 dev examples")
    assert stages[3:] == ["compiled on dev (4 examples)", "compiled on test (6 examples)"]
    assert ("compiled on test (6 examples)", 6, 6) in events
    printed = capsys.readouterr().out  # DSPy's BootstrapFewShot prints a line of its own
    assert not any(stage in printed for stage in ("baseline on", "compiling with", "compiled on"))


def test_compiled_program_is_saved_and_loads_back(field_lm, toy_rag, eval_set, tmp_path):
    report = run_compile(request(eval_set, tmp_path, hyperparameters={"metric_threshold": None}), toy_rag, track=False)
    fresh = toy_rag.deepcopy()
    fresh.load(str(report.program_path))
    assert fresh.generate.demos and len(fresh.generate.demos) == len(report.outcome.program.generate.demos)


def test_same_seed_and_warm_cache_give_the_same_compiled_program(toy_rag, eval_set, tmp_path):
    programs = []
    for attempt in range(2):
        with dspy.context(lm=FieldLM()):
            report = run_compile(request(eval_set, tmp_path / str(attempt), optimizer="random_search", hyperparameters={"num_candidate_programs": 3}), toy_rag, track=False)
        programs.append(report.program_path.read_text())
    assert programs[0] == programs[1]


def test_ctrl_c_marks_the_run_killed(field_lm, toy_rag, eval_set, tmp_path, tracked, monkeypatch):
    import optimizers.compile

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(optimizers.compile, "compile_program", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_compile(request(eval_set, tmp_path), toy_rag)
    run = mlflow.search_runs(experiment_names=["tests"], output_format="list", order_by=["start_time DESC"])[0]
    assert run.info.status == "KILLED"


def test_budget_stop_is_reported_in_the_summary(field_lm, toy_rag, eval_set, tmp_path):
    report = run_compile(request(eval_set, tmp_path, budget=Budget(max_lm_calls=2), hyperparameters={"metric_threshold": None}), toy_rag, track=False)
    assert report.compile_meter.calls == 2
    assert "stopped by the budget at 2 LM calls (cap 2)" in report.summary()


def test_eval_set_too_small_for_the_optimizer_names_the_minimum(toy_rag, eval_set, tmp_path):
    with pytest.raises(EvalSetError, match="simba needs at least 8 training examples; the split has 4"):
        run_compile(request(eval_set, tmp_path, optimizer="simba"), toy_rag, track=False)


def test_malformed_eval_set_names_the_file_and_line(toy_rag, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "q", "answer": "a", "sources": ["x.md"]}\n{"question": "q2"\n', encoding="utf-8")
    with pytest.raises(EvalSetError, match="bad.jsonl, line 2: not valid JSON"):
        run_compile(request(path, tmp_path), toy_rag, track=False)


def test_unknown_metric_and_optimizer_list_the_valid_ones(toy_rag, eval_set, tmp_path):
    with pytest.raises(ConfigError, match="Metrics: exact_match, token_f1"):
        run_compile(request(eval_set, tmp_path, metric={"f2": 1.0}), toy_rag, track=False)
    with pytest.raises(ConfigError, match="Valid optimizers: bootstrap"):
        run_compile(request(eval_set, tmp_path, optimizer="sgd"), toy_rag, track=False)
    with pytest.raises(ConfigError, match="not a number"):
        parse_metric("token_f1=high")
    assert parse_metric("token_f1=0.7, correctness=0.3") == {"token_f1": 0.7, "correctness": 0.3}


def test_unwritable_tracking_store_fails_before_any_work(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker}/mlflow.db")
    with pytest.raises(ConfigError, match="Cannot write to the MLflow tracking store .*Set MLFLOW_TRACKING_URI"):
        open_tracking("tests")
