"""Rebuild catalog.sqlite (the demo database the SQL function tools read) from catalog.sql beside it.

    .venv/bin/python eval_sets/tools/build_catalog.py [--output PATH]

Edit catalog.sql, run this, and commit both files.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "catalog.sql"
DATABASE = HERE / "catalog.sqlite"


def build(source: Path = SOURCE, output: Path = DATABASE) -> Path:
    """Write a fresh SQLite database at `output` from the statements in `source`; returns `output`."""
    script = source.read_text(encoding="utf-8")
    partial = output.with_name(output.name + ".partial")
    partial.unlink(missing_ok=True)
    connection = sqlite3.connect(partial)
    try:
        connection.executescript(script)
        connection.commit()
        connection.execute("VACUUM")
    finally:
        connection.close()
    partial.replace(output)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DATABASE, help="where to write the database")
    args = parser.parse_args(argv)
    path = build(output=args.output)
    sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
