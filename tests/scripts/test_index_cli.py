"""scripts/index.py as a user runs it: upsert records from JSONL, get and delete them by id."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_upsert_get_delete_and_a_wrong_dimension_refused(tmp_path):
    records = tmp_path / "notes.jsonl"
    records.write_text('{"id": "n1", "text": "rotate keys", "metadata": {"product": "gateway"}, "vector": [1, 0, 0]}\n'
                       '{"id": "n2", "text": "restart the broker", "vector": [0, 1, 0]}\n')
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "n3", "text": "x", "vector": [1, 0]}\n')
    script = str(ROOT / "scripts" / "index.py")
    common = ["--collection", "notes", "--store", str(tmp_path / "store")]
    # One process runs the four commands (as a user would, one after the other), so the test pays one start-up.
    runs = [["upsert", str(records), "--embedder", "mine"], ["upsert", str(bad)], ["delete", "n2"], ["get", "n1", "n2"]]
    commands = (f"import runpy, sys\nfor argv in {json.dumps(runs)}:\n"
                f"    sys.argv = [{script!r}, *argv, *{common!r}]\n"
                "    try:\n        runpy.run_path(sys.argv[0], run_name='__main__')\n"
                "    except SystemExit as exit:\n        print('exit', exit.code, flush=True)\n")
    result = subprocess.run([sys.executable, "-c", commands], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    lines = result.stdout.splitlines()
    assert lines[:2] == ["upserted 2 records into 'notes'", "exit 0"], result.stderr
    assert lines[2] == "exit 2" and "3-dimensional dense vectors, but 2-dimensional" in result.stderr
    assert lines[3:5] == ["deleted 1 records from 'notes'", "exit 0"]
    assert json.loads(lines[5])["metadata"] == {"product": "gateway"}
    assert json.loads(lines[6]) == {"id": "n2", "missing": True}
    assert lines[7] == "exit 1"
