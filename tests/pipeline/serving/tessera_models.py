"""Registered Tessera models for the serving tests, built once per test session and shared by the test modules.

Two documents are indexed: the admin API (port 8443) and a vault whose answer names the deny-listed word
"ultraviolet", so the output guard blocks that answer (the question itself passes the input guard). Models answer
with the scripted LM (`TESSERA_SERVING_LM=scripted/0`), so no real LM runs.
"""

import os
import uuid
from pathlib import Path

import mlflow

SCRIPTED_LM = "scripted/0"
ADMIN_QUESTION = "Which port does the admin API listen on?"
ADMIN_ANSWER = "The admin API listens on port 8443 and needs a client certificate."
VAULT_QUESTION = "What colour is the vault door painted?"
DENIED_WORD = "ultraviolet"
DOCS = {
    "admin.md": f"# Admin API\n\n{ADMIN_ANSWER}\n",
    "vault.md": f"# Vault\n\nThe vault door is painted {DENIED_WORD}. Its hinges are oiled every spring.\n",
}

_registered: dict[str, str] = {}


def registered_model(tmp_path_factory) -> str:
    """The URI (models:/<name>/1) of a compiled RAG program registered in the session's test store."""
    if "rag" not in _registered:
        _registered["rag"] = _register(tmp_path_factory.mktemp("tessera-model"))
    return _registered["rag"]


def registered_agent_model(tmp_path_factory) -> str:
    """The URI of a compiled agent program registered in the session's test store (same index and guards)."""
    if "agent" not in _registered:
        _registered["agent"] = _register(tmp_path_factory.mktemp("tessera-agent-model"), program="agent")
    return _registered["agent"]


def _register(root: Path, program: str = "rag") -> str:
    from optimizers.evaluation import Comparison
    from optimizers.tracking import log_program_model
    from pipeline.config import Settings
    from pipeline.programs.rag import RAG
    from pipeline.wiring import build_ingestor, open_configured_store

    docs = root / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    settings = Settings(
        store={"path": str(root / "store")},
        tracking={"registered_model": f"tessera-{uuid.uuid4().hex[:8]}"},
        guards={"deny_list": {"keywords": [DENIED_WORD]}},
    )
    with open_configured_store(settings) as store:
        build_ingestor(settings, store).sync(docs)
    program_path = root / "program.json"
    if program == "agent":
        from pipeline.wiring import build_agent

        with open_configured_store(settings) as store:
            agent = build_agent(settings, store)
            try:
                agent.save(program_path)
            finally:
                agent.close()
    else:
        RAG(None).save(program_path)
    experiment = mlflow.create_experiment(f"serving-{uuid.uuid4().hex[:8]}", artifact_location=(root / "artifacts").as_uri())
    run_id = mlflow.MlflowClient().create_run(experiment).info.run_id
    comparisons = [Comparison("test", "objective", 0.10, 0.18, 0.02, 0.14), Comparison("dev", "objective", 0.12, 0.16, -0.01, 0.09)]
    return log_program_model(run_id, program_path, settings, index_path=settings.store.path, program=program,
                             comparisons=comparisons,
                             description="compiled for the serving tests")


def scripted_environment(tracking_uri: str) -> dict[str, str]:
    """The environment a subprocess needs to load the test models: the test store and the scripted LM."""
    return {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "TESSERA_SERVING_LM": SCRIPTED_LM}
