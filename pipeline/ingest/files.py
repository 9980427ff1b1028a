"""Which files of a folder an ingest may read: supported types only, never a link out of the folder (unless asked),
never a pipe or device; and the content hash that identifies a file's version."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pipeline.errors import IngestError
from pipeline.ingest.parse import SUPPORTED_SUFFIXES
from pipeline.terminal import printable


def list_files(root: Path, follow_links: bool = False) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The files to ingest under `root`, and the files and folders left out with the reason, both sorted.

    Hidden files and folders (names starting with '.') are left out silently. Without `follow_links` no link
    to a folder is entered (files inside the folder are ingested where they are) and no file whose real path
    lies outside `root` is read.
    """
    root = root.resolve()
    files: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    entered = {root}
    for folder, dirs, names in os.walk(root, followlinks=follow_links):
        here = Path(folder)
        kept = []
        for name in sorted(d for d in dirs if not d.startswith(".")):
            reason = _folder_skip_reason(here / name, follow_links, entered)
            if reason is None:
                kept.append(name)
            else:
                skipped.append((here / name, reason))
        dirs[:] = kept
        for name in sorted(n for n in names if not n.startswith(".")):
            path = here / name
            reason = skip_reason(root, path, follow_links)
            if reason is None:
                files.append(path)
            else:
                skipped.append((path, reason))
    return files, sorted(skipped)


def skip_reason(root: Path, path: Path, follow_links: bool = False) -> str | None:
    """Why the file `path` under `root` must not be read, or None when it may be."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        return f"unsupported file type {suffix or '(no suffix)'}; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
    target = path.resolve()
    if not follow_links and not target.is_relative_to(root):
        return f"a link to {target}, outside the folder; not read (links out of the folder need --follow-links)"
    if not target.is_file():
        return "not a regular file (a broken link, a pipe or a device); not read"
    return None


def _folder_skip_reason(path: Path, follow_links: bool, entered: set[Path]) -> str | None:
    if not follow_links:
        if path.is_symlink():
            return f"a link to the folder {path.resolve()}; not followed (links need --follow-links)"
        return None
    target = path.resolve()
    if target in entered:
        return f"a link to the folder {target}, which is ingested already; not followed twice"
    entered.add(target)
    return None


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def check_folder(folder: str | Path) -> Path:
    """The resolved folder, or an IngestError that says what to pass instead."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise IngestError(f"Folder {printable(root)} does not exist. Pass the folder that holds your documents.")
    if not root.is_dir():
        raise IngestError(f"{printable(root)} is a file, not a folder. Pass the folder that holds it.")
    return root.resolve()
