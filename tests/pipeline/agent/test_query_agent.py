"""scripts/query.py --agent: bad input is a clear error with the RAG path's exit code; and (slow) the embedded
SmolLM2 answers 1234 × 5678 through the calculator, as `query.py --agent` builds the agent."""

import os
import subprocess
import sys
from pathlib import Path

import dspy
import pytest

from pipeline.cli import EXIT_USER_ERROR

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("question", ["", "   "])
def test_an_empty_question_is_a_clear_error_before_anything_loads(tmp_path, question):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(ROOT / "scripts/query.py"), "--agent", question, "--store",
                             str(tmp_path / "s")], check=False, capture_output=True, text=True, cwd=tmp_path, env=env,
                            timeout=120)
    assert result.returncode == EXIT_USER_ERROR
    assert "error: The question is empty" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_the_embedded_lm_multiplies_through_the_calculator(smollm2, tmp_path, monkeypatch):
    from pipeline.config import load_settings
    from pipeline.lm.plain_adapter import PlainAdapter
    from pipeline.store import open_store
    from pipeline.wiring import build_agent

    for name in [name for name in os.environ if name.startswith("TESSERA_") and name != "TESSERA_LM"]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    settings = load_settings(store={"path": str(tmp_path / "store")})
    lm = smollm2.copy(max_tokens=64)
    with open_store(path=settings.store.path) as store:
        agent = build_agent(settings, store)
        try:
            # The embedder's first encode can outlast the injection guard's timeout on a busy machine; this test
            # is about the LM and the calculator, so the guard gets its model warm first.
            agent.input_guard.run("What is 2 plus 2?")
            with dspy.context(lm=lm, adapter=PlainAdapter()):
                prediction = agent(question="What is 1234 multiplied by 5678?")
        finally:
            agent.close()
    calls = [step for step in prediction.steps if step["kind"] == "call"]
    assert calls and calls[0]["tool"] == "calculator" and calls[0]["result"] == "7006652"
    assert "7006652" in prediction.answer.replace(",", "")
    assert not prediction.blocked
