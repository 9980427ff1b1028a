"""`scripts/promote.py` and `optimizers.promotion`: the alias moves only with numbers that justify it, and the
numbers are written into the version's description; a model loads by its alias everywhere a URI is taken."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from optimizers.evaluation import Comparison
from optimizers.promotion import promote
from optimizers.tracking import eval_tags
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SPLIT = {"eval_set_hash": "abc", "seed": "0", "train_size": "4", "dev_size": "4", "test_size": "4"}


@pytest.fixture
def model_name():
    name = f"promo-{uuid.uuid4().hex[:8]}"
    mlflow.MlflowClient().create_registered_model(name)
    return name


def compiled_version(name, scores, *, baseline=0.10, ci=(0.02, 0.14), split=SPLIT, evaluated=True) -> str:
    """A version as a compile registers it: a run with the split's params and a per-question table, and the
    evaluation as version tags. The model files themselves play no part in promotion."""
    client = mlflow.MlflowClient()
    with mlflow.start_run() as run:
        mlflow.log_params(split)
        mlflow.log_table({"id": list(scores), "compiled_objective": list(scores.values())}, "per_example/test.json")
    version = str(client.create_model_version(name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id).version)
    if evaluated:
        compiled = sum(scores.values()) / len(scores)
        for key, value in eval_tags([Comparison("test", "objective", baseline, compiled, *ci)]).items():
            client.set_model_version_tag(name, version, key, value)
    return version


GOOD = {"q1": 0.2, "q2": 0.2, "q3": 0.1, "q4": 0.3}
BETTER = {"q1": 0.5, "q2": 0.6, "q3": 0.4, "q4": 0.7}
WORSE = {"q1": 0.0, "q2": 0.05, "q3": 0.0, "q4": 0.1}


def test_the_first_champion_gets_its_own_numbers_in_its_description(model_name):
    version = compiled_version(model_name, GOOD)

    promotion = promote(model_name, version, "champion", reason="first compile on the demo set")

    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(model_name, "champion").version) == version
    description = client.get_model_version(model_name, version).description
    assert "promoted to champion." in description
    assert "Test objective 0.100 uncompiled → 0.200 compiled (+0.100, 95% CI [+0.020, +0.140])" in description
    assert "Reason given: first compile on the demo set" in description
    assert promotion.previous is None


def test_a_better_challenger_replaces_the_champion_with_a_paired_comparison(model_name):
    champion = compiled_version(model_name, GOOD)
    promote(model_name, champion, "champion")
    challenger = compiled_version(model_name, BETTER)

    promotion = promote(model_name, challenger, "champion")

    assert promotion.previous == champion
    assert str(mlflow.MlflowClient().get_model_version_by_alias(model_name, "champion").version) == challenger
    assert f"replacing version {champion}" in promotion.note
    assert f"Against champion version {champion}: test objective 0.550 vs 0.200 (+0.350); paired over 4 test questions" in promotion.note


def test_a_version_worse_than_the_champion_is_refused_unless_forced(model_name):
    champion = compiled_version(model_name, BETTER)
    promote(model_name, champion, "champion")
    worse = compiled_version(model_name, WORSE)

    with pytest.raises(ConfigError, match=f"worse than the current champion, version {champion}.*--force"):
        promote(model_name, worse, "champion")
    assert str(mlflow.MlflowClient().get_model_version_by_alias(model_name, "champion").version) == champion

    forced = promote(model_name, worse, "champion", force=True)
    assert "Forced despite" in forced.note
    assert str(mlflow.MlflowClient().get_model_version_by_alias(model_name, "champion").version) == worse


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda name: compiled_version(name, GOOD, evaluated=False), "has no evaluation tags"),
        (lambda name: compiled_version(name, GOOD, ci=(-0.3, -0.1)), "worse than its own uncompiled baseline"),
    ],
    ids=["unevaluated", "worse-than-baseline"],
)
def test_a_version_without_good_numbers_is_refused(model_name, make, says):
    version = make(model_name)

    with pytest.raises(ConfigError, match=says):
        promote(model_name, version, "challenger")


def test_compiles_on_different_splits_are_compared_but_not_paired(model_name):
    promote(model_name, compiled_version(model_name, GOOD), "champion")
    other = compiled_version(model_name, BETTER, split={**SPLIT, "seed": "7"})

    promotion = promote(model_name, other, "champion")

    assert "not paired (the compiles scored different test splits" in promotion.note


def promote_command(*args, tracking):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}, "MLFLOW_TRACKING_URI": tracking}
    return subprocess.run([sys.executable, str(ROOT / "scripts/promote.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_command_moves_the_alias_and_fails_cleanly_on_a_missing_version(model_name, mlflow_in_a_temporary_store):
    version = compiled_version(model_name, GOOD)

    done = promote_command(model_name, version, "--alias", "challenger", tracking=mlflow_in_a_temporary_store)
    missing = promote_command(model_name, "99", "--alias", "champion", tracking=mlflow_in_a_temporary_store)

    assert done.returncode == 0, done.stderr
    assert f"models:/{model_name}@challenger is now version {version}." in done.stdout
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert f"There is no version 99 of registered model {model_name!r}" in missing.stderr


def test_a_promoted_model_loads_by_alias_in_mlflow_and_verified(tmp_path_factory, tmp_path, monkeypatch):
    from pipeline.serving.registry import load_verified_model
    from tests.pipeline.serving.tessera_models import ADMIN_ANSWER, ADMIN_QUESTION, SCRIPTED_LM, registered_model

    name = registered_model(tmp_path_factory).split("/")[1]
    promote(name, "1", "champion")
    monkeypatch.setenv("TESSERA_SERVING_LM", SCRIPTED_LM)
    question = pd.DataFrame({"question": [ADMIN_QUESTION]})

    plain = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    verified = load_verified_model(f"models:/{name}@champion", tmp_path / "copy")

    assert plain.predict(question)["answer"][0] == verified.predict(question)["answer"][0] == ADMIN_ANSWER
    assert plain.unwrap_python_model().served.identity.alias == "champion"
