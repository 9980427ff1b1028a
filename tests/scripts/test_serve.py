"""scripts/serve.py's key management, usage report and start-up errors, run as its command line would in this
process (serving itself is tested against a real subprocess in tests/pipeline/serving/test_http_client.py)."""

import json
import os
import runpy
import sys
from pathlib import Path

import pytest

from pipeline.serving.keys import Prices, UsageLog, read_keys

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def serve(monkeypatch, capsys, tmp_path):
    """Run scripts/serve.py with these arguments in `tmp_path`: returns (exit code, stdout, stderr)."""
    for name in [name for name in os.environ if name.startswith("TESSERA_") and name != "TESSERA_LM"]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    saved = dict(os.environ)

    def call(*args):
        path = str(ROOT / "scripts" / "serve.py")
        monkeypatch.setattr(sys, "argv", [path, *args])
        with pytest.raises(SystemExit) as exited:
            runpy.run_path(path, run_name="__main__")
        captured = capsys.readouterr()
        return exited.value.code, captured.out, captured.err

    yield call
    os.environ.clear()
    os.environ.update(saved)


def test_add_key_prints_the_key_once_and_stores_only_its_salted_hash(serve, tmp_path):
    code, out, _ = serve("--add-key", "alice", "--rpm", "30")

    key = out.splitlines()[0]
    stored = (tmp_path / ".tessera" / "api_keys.json").read_text()
    assert code == 0 and key.startswith("tsk-") and len(key) > 40
    assert key not in stored and "only time it is shown" in out
    [entry] = read_keys(tmp_path / ".tessera" / "api_keys.json")
    assert (entry.id, entry.rate_limit_rpm) == ("alice", 30) and entry.matches(key) and not entry.matches(key + "x")
    assert oct((tmp_path / ".tessera" / "api_keys.json").stat().st_mode & 0o777) == "0o600"
    _, second, _ = serve("--add-key", "bob")
    assert second.splitlines()[0] != key


def test_keys_are_listed_revoked_and_a_repeated_or_unknown_name_is_a_clear_error(serve):
    serve("--add-key", "alice")
    repeated = serve("--add-key", "alice")
    _, listed, _ = serve("--list-keys")
    revoked = serve("--revoke-key", "alice")
    unknown = serve("--revoke-key", "alice")
    bad_name = serve("--add-key", "alice smith")

    assert repeated[0] == 2 and "already has a key named 'alice'" in repeated[2]
    assert listed.startswith("alice  created ")
    assert revoked[0] == 0 and serve("--list-keys")[1] == ""
    assert unknown[0] == 2 and "has no key named 'alice'" in unknown[2]
    assert bad_name[0] == 2 and "use 1-64 letters" in bad_name[2]


def test_usage_sums_requests_tokens_and_cost_per_key(serve, tmp_path):
    log = UsageLog(tmp_path / ".tessera" / "usage.jsonl", Prices(1.0, 2.0))
    log.record(api_key_id="alice", status=200, prompt_tokens=100, completion_tokens=50)
    log.record(api_key_id="alice", status=200, prompt_tokens=300, completion_tokens=50)
    log.record(api_key_id="bob", status=401, prompt_tokens=None, completion_tokens=None)

    code, out, _ = serve("--usage")

    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert code == 0 and rows == {"alice": ["2", "400", "100", "0.6000"], "bob": ["1", "0", "0", "0.0000"]}
    assert json.loads((tmp_path / ".tessera" / "usage.jsonl").read_text().splitlines()[0])["cost_usd"] == 0.2


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "Name the model to serve: --model models:/<name>@<alias>"),
        (("--model", "runs:/abc/model"), "'runs:/abc/model' is not a registered model URI"),
        (("--model", "models:/no-such-model@champion"), "Cannot resolve models:/no-such-model@champion"),
        (("--model", "models:/no-such-model/1"), "Cannot find models:/no-such-model/1 in the model registry"),
        (("--model", "models:/m/1", "--port", "0"), "Invalid serving option"),
        (("--model", "models:/m/1", "--rpm", "5"), "--rpm sets one key's limit with --add-key"),
    ],
    ids=["no-model", "not-registered", "unknown-alias", "unknown-version", "bad-port", "rpm-without-add-key"],
)
def test_a_bad_start_is_one_clear_error(serve, args, says):
    code, _, err = serve(*args)

    assert code == 2 and says in err, err
    assert "Traceback" not in err
