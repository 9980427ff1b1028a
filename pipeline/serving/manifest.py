"""A model's hash manifest: the sha256 of every file in its folder, and the check that a folder still matches it.

A model artifact is code (MLflow runs its `model.py` when loading it), so a file that changed after registration
must stop the load, and the error names the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from pipeline.errors import UntrustedModelError

# MLflow writes this file into every copy it downloads from the registry; it never comes from the model itself.
DOWNLOAD_ONLY = frozenset({"registered_model_meta"})


def hash_tree(root: Path) -> dict[str, str]:
    """{path relative to root, with / separators: sha256 hex} for every file under root.

    A symbolic link is refused rather than followed: what it points at is outside the model and can change.
    """
    manifest = {}
    for folder, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                raise UntrustedModelError(f"The model file {relative!r} is a symbolic link; a model folder holds plain files only.")
            if name in files and relative not in DOWNLOAD_ONLY:
                manifest[relative] = _sha256(path)
    return manifest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_text(manifest: Mapping[str, str]) -> str:
    """The manifest as stored: sorted JSON, so the same files always give the same text and digest."""
    return json.dumps(dict(sorted(manifest.items())), indent=1) + "\n"


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_manifest(text: str) -> dict[str, str]:
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UntrustedModelError(f"The model's manifest is not valid JSON ({exc}).") from exc
    if not isinstance(manifest, dict) or not all(isinstance(key, str) and isinstance(value, str) for key, value in manifest.items()):
        raise UntrustedModelError("The model's manifest is not a {file: sha256} object.")
    return manifest


def check_tree(root: Path, manifest: Mapping[str, str], *, model: str | None = None) -> None:
    """Raise UntrustedModelError naming every file under root that was changed, removed or added since the
    manifest was recorded; `model` names the model in the message (default: the folder)."""
    found = hash_tree(root)
    changed = sorted(name for name in manifest.keys() & found.keys() if manifest[name] != found[name])
    missing = sorted(manifest.keys() - found.keys())
    added = sorted(found.keys() - manifest.keys())
    problems = [f"{label}: {', '.join(names)}" for label, names in (("changed", changed), ("missing", missing), ("added", added)) if names]
    if problems:
        raise UntrustedModelError(
            f"The model {model or root} does not match the manifest recorded when it was registered ({'; '.join(problems)}). "
            "A model's files are code that runs when it loads: register the model again from a trusted compile "
            "(scripts/compile.py) instead of editing it."
        )
