"""File names with control characters cannot forge lines in what an ingest prints or logs."""

import logging
import runpy
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ingest.chunking import make_chunker
from pipeline.ingest.report import IngestProgress
from pipeline.ingest.sync import Ingestor
from pipeline.store import open_store
from pipeline.terminal import printable

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ingest.py"
FORGED = "x.md\ndocs: 0 indexed, 0 failed; all good.md"
ESCAPED = "evil\x1b[2K\r\x1b[32mclean.md"
BIDI = "report\u202egpj.md"
UNSAFE = ("\x1b", "\n", "\r", "\u202e", "\x07")


def assert_safe(lines):
    for line in lines:
        assert not any(char in line for char in UNSAFE), repr(line)


@pytest.fixture
def report(tmp_path, hashing_embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in (FORGED, ESCAPED, BIDI):
        (docs / name).write_text("# Title\n\nSome text worth indexing.\n", encoding="utf-8")
    (docs / "bad\x1b[31m.txt").write_bytes(b"\x00binary")
    (docs / "img\n.png").write_bytes(b"png")
    with open_store(path=tmp_path / "store") as store:
        ingestor = Ingestor(store, "docs", hashing_embedder, make_chunker("structure", size=200, overlap=0))
        return ingestor.sync(docs)


def test_the_printed_report_escapes_control_characters_in_names_and_reasons(report):
    lines = report.lines()
    assert_safe(lines)
    assert len(lines) == 3  # the summary, one skipped file, one failed file: no forged lines
    assert "3 indexed" in lines[0] and "1 failed" in lines[0]
    assert lines[1].startswith("skipped: img\\n.png:")
    assert lines[2].startswith("failed: bad\\x1b[31m.txt: ") and "bad\\x1b[31m.txt: it contains NUL" in lines[2]
    assert sorted(report.indexed) == sorted([BIDI, ESCAPED, FORGED])  # the index keeps the real names


def test_the_warning_logged_for_a_broken_file_is_escaped(tmp_path, hashing_embedder, caplog):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.md").write_text("# A\n\ntext\n", encoding="utf-8")
    (docs / "bad\n\x1b[31m.txt").write_bytes(b"\x00binary")
    with caplog.at_level(logging.WARNING), open_store(path=tmp_path / "store") as store:
        Ingestor(store, "docs", hashing_embedder, make_chunker("structure", size=200, overlap=0)).sync(docs)
    assert caplog.messages and any("bad\\n\\x1b[31m.txt" in message for message in caplog.messages)
    assert_safe(caplog.messages)


def test_the_progress_bar_escapes_the_file_name(capsys):
    bar = runpy.run_path(str(SCRIPT))["ProgressBar"]("docs")
    bar(IngestProgress(ESCAPED, "writing", 12, 0, 1, 10, 100))
    bar.bar.refresh()
    bar.close()
    err = capsys.readouterr().err
    assert "evil\\x1b[2K\\r\\x1b[32mclean.md" in err and "\x1b[2K" not in err


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_printable_leaves_no_control_character_and_is_idempotent(text):
    shown = printable(text)
    assert not any(unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"} for char in shown)
    assert printable(shown) == shown
    if text.isprintable():
        assert shown == text


def test_printable_escapes_undecodable_bytes_in_a_name():
    assert printable("caf\udce9.md") == "caf\\udce9.md"
