"""Every compile is one MLflow run: params, metrics, artifacts, traces, and the compiled program as a model.

Tracking goes to `MLFLOW_TRACKING_URI` when set, else to a SQLite file `mlflow.db` in the working folder
(artifacts beside it in `mlartifacts/`), so `mlflow ui` started there shows every compile.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

HOST_TAG, PID_TAG = "tessera.host", "tessera.pid"
NOTE_TAG = "mlflow.note.content"  # the run description the MLflow UI shows


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def open_tracking(experiment: str) -> str:
    """Point MLflow at the tracking store and experiment, failing early (before any LM call) if it cannot be written."""
    import mlflow

    # Read before set_tracking_uri, which exports the variable for child processes.
    artifacts = None if os.environ.get("MLFLOW_TRACKING_URI") else (Path.cwd() / "mlartifacts").as_uri()
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        if mlflow.get_experiment_by_name(experiment) is None:
            mlflow.create_experiment(experiment, artifact_location=artifacts)
        found = mlflow.set_experiment(experiment)
        _check_artifact_store(found.artifact_location)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - any store failure means the same thing to the user
        raise ConfigError(
            f"Cannot write to the MLflow tracking store {uri}: {exc}. "
            "Set MLFLOW_TRACKING_URI to a writable location (for example sqlite:////tmp/mlflow.db) or an MLflow server."
        ) from exc
    return uri


def _check_artifact_store(location: str) -> None:
    if not location.startswith(("file:", "/")):
        return  # remote artifact stores are checked by the first upload
    path = Path(location.removeprefix("file://"))
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(f"Cannot write MLflow artifacts to {path}: {exc.strerror}. Make it writable or set MLFLOW_TRACKING_URI.") from exc


class Terminated(KeyboardInterrupt):
    """SIGTERM during a compile, handled like Ctrl-C: the run ends as KILLED and the command exits as interrupted."""


@contextlib.contextmanager
def compile_run(run_name: str, tags: Mapping[str, str] | None = None) -> Iterator[Any]:
    """One MLflow run for one compile, with DSPy autologging of compile and evaluation traces.

    Ctrl-C or SIGTERM ends the run as KILLED, any other error as FAILED; nothing half-written is left as a
    finished run. A run that a killed process left RUNNING on this host is marked FAILED when the next one starts.
    """
    import mlflow
    import mlflow.dspy

    mlflow.dspy.autolog(log_traces=True, log_traces_from_compile=True, log_traces_from_eval=True, silent=True)
    run = mlflow.start_run(run_name=run_name, tags={**(tags or {}), HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())})
    try:
        with _sigterm_raises():
            fail_dead_runs(run.info.experiment_id)
            yield run
    except KeyboardInterrupt:
        mlflow.end_run(status="KILLED")
        raise
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    else:
        mlflow.end_run(status="FINISHED")
    finally:
        mlflow.dspy.autolog(disable=True)


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into `Terminated` inside the block (signal handlers can only be set from the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        on_interrupt = signal.getsignal(signal.SIGINT)
        if callable(on_interrupt):
            on_interrupt(signal.SIGINT, frame)  # as Ctrl-C would, so DSPy's evaluator also drops its queued examples
        raise Terminated(f"terminated by signal {signum}")

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def fail_dead_runs(experiment_id: str) -> list[str]:
    """Mark FAILED, with a note, the RUNNING runs of an experiment whose process (on this host) is gone.

    SIGKILL, a crash or a power cut leave a run RUNNING forever; only runs tagged with this host are judged,
    since a pid means nothing on another machine. Runs nested under a dead run (DSPy's evaluation runs) go too.
    Returns the ids of the runs marked.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    running = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000)
    host = socket.gethostname()
    dead = {
        run.info.run_id: run
        for run in running
        if run.data.tags.get(HOST_TAG) == host and not _process_alive(run.data.tags.get(PID_TAG, ""))
    }
    owners = {run.info.run_id: dead.get(run.data.tags.get("mlflow.parentRunId"), run) for run in running}
    marked = [run for run in running if owners[run.info.run_id].info.run_id in dead]
    for run in marked:
        note = (
            f"Marked FAILED by a later compile: process {owners[run.info.run_id].data.tags.get(PID_TAG)} on {host} "
            "ended (killed or crashed) without closing this run; its results are incomplete."
        )
        client.set_tag(run.info.run_id, NOTE_TAG, note)
        client.set_terminated(run.info.run_id, status="FAILED")
        log.warning("MLflow run %s (%s): %s", run.info.run_id, run.info.run_name, note)
    return [run.info.run_id for run in marked]


def _process_alive(pid: str) -> bool:
    """Whether a process with this pid runs here; an unreadable pid is treated as alive (never fail a live run)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError, OverflowError):
        return True
    return True


def metric_key(name: str) -> str:
    """MLflow metric names allow letters, digits and _ - . / and spaces."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", name.replace("@", "_at_").replace(":", "."))


def log_params(params: Mapping[str, Any]) -> None:
    import mlflow

    mlflow.log_params({key: _param(value) for key, value in params.items()})


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text[:6000]


def log_metrics(metrics: Mapping[str, float]) -> None:
    import mlflow

    mlflow.log_metrics({metric_key(key): float(value) for key, value in metrics.items()})


def log_rows(rows: list[dict], artifact_file: str) -> None:
    """A per-example results table (viewable in the MLflow UI's artifact and evaluation views)."""
    import mlflow

    if rows:
        columns = {key: [row.get(key) for row in rows] for key in rows[0]}
        mlflow.log_table(columns, artifact_file=artifact_file)


def log_text(text: str, artifact_file: str) -> None:
    import mlflow

    mlflow.log_text(text, artifact_file)


EVAL_TAG_PREFIX = "tessera.eval"
PROGRAM_TAG = "tessera.program"
EVAL_FIELDS = ("baseline", "compiled", "delta", "ci_low", "ci_high")
# The packages the model runs, shipped as its code (the model imports nothing from optimizers/ or scripts/).
MODEL_PACKAGES = ("pipeline", "guardrails", "signatures", "eval_sets")
VALIDATION_LM = "scripted/0"


def log_program_model(run_id: str, program_path: Path, settings, *, index_path: Path | None, program: str = "rag",
                      comparisons: Sequence[Any] = (), description: str | None = None) -> str:
    """Log the compiled program as a self-contained pyfunc model in the compile's run and register it under
    `settings.tracking.registered_model`; returns the registered URI `models:/<name>/<version>`.

    The model holds the program state, the settings and guard configuration, a snapshot of the collection (when
    `index_path` is the embedded store's folder), Tessera's own code (code paths) and the third-party requirements,
    an input example and a signature that types list columns as arrays. The version is tagged with its program
    kind and with `comparisons` (the compile's evaluation: baseline, compiled, delta and the 95% CI of the delta per
    split and metric, see `eval_tags`), and gets the hash manifest `load_verified_model` checks. MLflow checks the
    input example by loading the model and answering it; that check answers with the scripted LM.
    """
    import warnings

    import mlflow
    import pandas as pd

    import pipeline.serving.model
    from pipeline.serving.program import INDEX, PROGRAM
    from pipeline.serving.registry import record_manifest, tracing_on_while_logging
    from pipeline.serving.snapshot import SNAPSHOT_NAME, pack_collection

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        artifacts = {PROGRAM: str(program_path), **_settings_artifacts(settings, root)}
        if index_path is not None:
            artifacts[INDEX] = str(pack_collection(index_path, settings.collection, root / SNAPSHOT_NAME))
        example = pd.DataFrame({"question": ["How do I rotate the API keys?"]})
        with mlflow.start_run(run_id=run_id), warnings.catch_warnings(), tracing_on_while_logging(), \
                _environment(TESSERA_SERVING_LM=VALIDATION_LM):
            # MLflow suggests type hints; the explicit signature covers them.
            warnings.simplefilter("ignore", UserWarning)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=pipeline.serving.model.__file__,
                artifacts=artifacts,
                code_paths=_code_paths(root / "code"),
                # Loaders may override these (None: not set); see pipeline.serving.program.load_served_program.
                model_config={"program": program, "model_alias": None, "tracing": None},
                signature=model_signature(),
                input_example=example,
                pip_requirements=_requirements(),
                registered_model_name=settings.tracking.registered_model,
            )
    name, version = settings.tracking.registered_model, str(info.registered_model_version)
    client = mlflow.MlflowClient()
    for key, value in {PROGRAM_TAG: program, **eval_tags(comparisons)}.items():
        client.set_model_version_tag(name, version, key, value)
    if description:
        client.update_model_version(name, version, description=description)
    record_manifest(name, version)
    return f"models:/{name}/{version}"


def model_signature():
    """Inputs: a question column. Outputs: what `TesseraModel.predict` returns, list columns as arrays. Params:
    the request id and API key id a server passes for the request's trace."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
    from mlflow.types.schema import Array

    return ModelSignature(
        inputs=Schema([ColSpec(DataType.string, "question")]),
        outputs=Schema([
            ColSpec(DataType.string, "answer"),
            ColSpec(Array(DataType.string), "citations"),
            ColSpec(Array(DataType.string), "sources"),
            ColSpec(DataType.boolean, "blocked"),
            ColSpec(DataType.string, "guard"),
            ColSpec(DataType.long, "prompt_tokens"),
            ColSpec(DataType.long, "completion_tokens"),
        ]),
        params=ParamSchema([ParamSpec("request_id", DataType.string, ""), ParamSpec("api_key_id", DataType.string, "")]),
    )


def eval_tags(comparisons: Sequence[Any]) -> dict[str, str]:
    """`tessera.eval.<split>.<metric>.<baseline|compiled|delta|ci_low|ci_high>` for each comparison, as text."""
    tags = {}
    for c in comparisons:
        values = (c.before, c.after, c.after - c.before, c.low, c.high)
        for field, value in zip(EVAL_FIELDS, values, strict=True):
            tags[f"{EVAL_TAG_PREFIX}.{metric_key(c.split)}.{metric_key(c.metric)}.{field}"] = f"{float(value):.6g}"
    return tags


def settings_for_model(settings) -> dict:
    """The settings to ship with the model: secrets and guards left out (guards go in their own artifact), the index
    path replaced at load time."""
    data = settings.model_dump(mode="json", exclude={"store": {"api_key"}, "guards": True})
    data["store"].pop("path", None)
    return data


def _settings_artifacts(settings, root: Path) -> dict[str, str]:
    from pipeline.serving.program import GUARDS, SETTINGS

    settings_file, guards_file = root / "settings.json", root / "guards.json"
    settings_file.write_text(json.dumps(settings_for_model(settings), indent=2), encoding="utf-8")
    guards_file.write_text(json.dumps(settings.guards.model_dump(mode="json"), indent=2), encoding="utf-8")
    return {SETTINGS: str(settings_file), GUARDS: str(guards_file)}


def _code_paths(target: Path) -> list[str]:
    """Clean copies (no bytecode) of the packages the model imports, for MLflow to ship as the model's code."""
    from importlib import util

    paths = []
    for package in MODEL_PACKAGES:
        source = Path(util.find_spec(package).origin).parent
        shutil.copytree(source, target / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        paths.append(str(target / package))
    return paths


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _requirements() -> list[str]:
    """The model's environment: the dependencies of the installed Tessera distribution, without its extras
    (Tessera itself is installed from source)."""
    from importlib import metadata

    try:
        declared = metadata.requires("tessera") or []
    except metadata.PackageNotFoundError as exc:
        raise ConfigError(
            "Tessera is not installed as a package, so the model's requirements are unknown. "
            "Install it with `pip install -e .` (or `make install`) in the Tessera folder."
        ) from exc
    # An extra's requirement carries its environment marker: `pytest>=8; extra == "test"`.
    return [text for text in declared if "extra" not in text.partition(";")[2]]
