"""The command-line tests' shared fixture: a script run in this process as its command line would run it."""

import io
import os
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def script(monkeypatch, capsys, tmp_path):
    """Run `scripts/<name>` in this process as its command line would: returns (exit code, stdout, stderr).

    An exception that escapes the entry point fails the test with its traceback, as it would print one."""
    for name in [name for name in os.environ if name.startswith("TESSERA_") and name != "TESSERA_LM"]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    # entry_point sets environment defaults (offline hubs, MLflow log level); they stay inside this test.
    saved = dict(os.environ)

    def call(name, *args, stdin=None):
        path = str(ROOT / "scripts" / name)
        monkeypatch.setattr(sys, "argv", [path, *args])
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
        with pytest.raises(SystemExit) as exited:
            runpy.run_path(path, run_name="__main__")
        captured = capsys.readouterr()
        return exited.value.code, captured.out, captured.err

    yield call
    os.environ.clear()
    os.environ.update(saved)
