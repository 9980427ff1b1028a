"""Moving a registered model's `champion` / `challenger` alias to a version, with the numbers that justify it.

A compile tags the version it registers with its evaluation (`tessera.eval.<split>.<metric>.<field>`, see
`optimizers.tracking.eval_tags`). Promotion reads those tags, compares the version with the one that holds the alias
now (paired over the same test questions, from the two compile runs' per-example tables, when both evaluated the
same split), writes why into the version's description, and moves the alias. It refuses a version that is worse
than its own baseline, or than the current holder, unless forced.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from optimizers.evaluation import paired_bootstrap_ci
from optimizers.tracking import EVAL_FIELDS, EVAL_TAG_PREFIX
from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

ALIASES = ("champion", "challenger")
HEADLINE = ("test", "objective")
PROMOTED_TAG = "tessera.promoted"
# Run params that must agree for two compiles to have scored the same test questions.
SAME_SPLIT_PARAMS = ("eval_set_hash", "seed", "train_size", "dev_size", "test_size")


@dataclass(frozen=True)
class Promotion:
    name: str
    version: str
    alias: str
    previous: str | None  # the version that held the alias before, if another one did
    note: str  # what was added to the version's description


def evaluation_of(tags: Mapping[str, str]) -> dict[tuple[str, str], dict[str, float]]:
    """{(split, metric): {baseline, compiled, delta, ci_low, ci_high}} from a version's tags."""
    found: dict[tuple[str, str], dict[str, float]] = {}
    for key, value in tags.items():
        if not key.startswith(EVAL_TAG_PREFIX + "."):
            continue
        split, _, rest = key.removeprefix(EVAL_TAG_PREFIX + ".").partition(".")
        metric, _, field = rest.rpartition(".")
        if field in EVAL_FIELDS and metric:
            try:
                found.setdefault((split, metric), {})[field] = float(value)
            except ValueError:
                log.warning("ignoring tag %s=%r: not a number", key, value)
    return {key: fields for key, fields in found.items() if set(fields) == set(EVAL_FIELDS)}


def promote(name: str, version: str, alias: str, *, reason: str | None = None, force: bool = False,
            client=None, now: datetime.datetime | None = None) -> Promotion:
    """Point `models:/<name>@<alias>` at `version` and record why in the version's description."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if alias not in ALIASES:
        raise ConfigError(f"Alias {alias!r} is not one Tessera manages; use one of: {', '.join(ALIASES)}.")
    client = client or MlflowClient()
    try:
        target = client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise ConfigError(f"There is no version {version} of registered model {name!r}: {exc.message}") from None
    holder = _alias_holder(client, name, alias)
    previous = holder if holder is not None and holder.version != target.version else None

    own = evaluation_of(target.tags)
    headline = own.get(HEADLINE)
    problems = []
    if headline is None:
        problems.append(f"version {target.version} has no evaluation tags ({EVAL_TAG_PREFIX}.test.objective.*): "
                        "it was not registered by scripts/compile.py, so nothing shows it is any good")
    elif headline["ci_high"] < 0:
        problems.append(f"version {target.version} is worse than its own uncompiled baseline on the test split "
                        f"(95% CI of the gain [{headline['ci_low']:+.3f}, {headline['ci_high']:+.3f}])")
    lines = [f"{(now or datetime.datetime.now(datetime.UTC)):%Y-%m-%d %H:%M} UTC: promoted to {alias}"
             + (f", replacing version {previous.version}." if previous else ".")]
    if headline is not None:
        lines.append(_own_line(headline))
    if previous is not None:
        line, worse = _versus(client, target, previous, alias)
        lines.append(line)
        if worse:
            problems.append(f"version {target.version} is worse than the current {alias}, version {previous.version}")
    if reason:
        lines.append(f"Reason given: {reason}")
    if problems and not force:
        raise ConfigError("Not promoted: " + "; ".join(problems) + ". Pass --force to promote it anyway.")
    if problems:
        lines.append("Forced despite: " + "; ".join(problems) + ".")
    note = "\n".join(lines)
    description = f"{target.description}\n\n{note}" if target.description else note
    client.update_model_version(name, target.version, description=description)
    client.set_model_version_tag(name, target.version, f"{PROMOTED_TAG}.{alias}", lines[0].split(" UTC")[0])
    client.set_registered_model_alias(name, alias, target.version)
    return Promotion(name, str(target.version), alias, str(previous.version) if previous else None, note)


def _alias_holder(client, name: str, alias: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None  # nobody holds the alias yet


def _own_line(fields: Mapping[str, float]) -> str:
    return (f"Test objective {fields['baseline']:.3f} uncompiled → {fields['compiled']:.3f} compiled "
            f"({fields['delta']:+.3f}, 95% CI [{fields['ci_low']:+.3f}, {fields['ci_high']:+.3f}]).")


def _versus(client, target, previous, alias: str) -> tuple[str, bool]:
    """The comparison with the current alias holder, and whether it shows the new version worse."""
    mine, theirs = evaluation_of(target.tags).get(HEADLINE), evaluation_of(previous.tags).get(HEADLINE)
    if mine is None or theirs is None:
        return f"Not compared with {alias} version {previous.version}: one of them has no test evaluation.", False
    line = (f"Against {alias} version {previous.version}: test objective {mine['compiled']:.3f} vs "
            f"{theirs['compiled']:.3f} ({mine['compiled'] - theirs['compiled']:+.3f})")
    paired = _paired_test_scores(client, target.run_id, previous.run_id)
    if paired is None:
        return line + "; not paired (the compiles scored different test splits, or their per-example tables are missing).", False
    new, old = paired
    low, high = paired_bootstrap_ci(old, new)
    return line + f"; paired over {len(new)} test questions, 95% CI [{low:+.3f}, {high:+.3f}].", high < 0


def _paired_test_scores(client, run_id: str | None, other_run_id: str | None) -> tuple[list[float], list[float]] | None:
    """The compiled objective per test question of two compile runs, paired by question, when both scored the
    same split; None otherwise."""
    from mlflow.exceptions import MlflowException

    if not run_id or not other_run_id:
        return None
    try:
        runs = [client.get_run(run_id), client.get_run(other_run_id)]
        if any(runs[0].data.params.get(key) != runs[1].data.params.get(key) for key in SAME_SPLIT_PARAMS):
            return None
        tables = [_objective_by_question(client, run) for run in (run_id, other_run_id)]
    except (MlflowException, OSError, KeyError, ValueError) as exc:
        log.warning("cannot pair the test scores of runs %s and %s: %s", run_id, other_run_id, exc)
        return None
    common = [key for key in tables[0] if key in tables[1]]
    if not common:
        return None
    return [tables[0][key] for key in common], [tables[1][key] for key in common]


def _objective_by_question(client, run_id: str) -> dict[str, float]:
    import json
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as scratch:
        path = client.download_artifacts(run_id, "per_example/test.json", scratch)
        table = json.loads(Path(path).read_text(encoding="utf-8"))
    columns = table["columns"]
    ids, scores = columns.index("id"), columns.index("compiled_objective")
    return {str(row[ids]): float(row[scores] or 0.0) for row in table["data"]}
