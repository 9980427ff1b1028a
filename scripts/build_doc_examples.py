"""Rebuild guardrails/data/doc_examples.jsonl: benign documentation windows the injection guard's kNN layer votes with.

Ordinary documentation (headings, tables, "See [X](x.md).", "This feature is experimental") lies near the injection
examples in MiniLM's space, so without benign documentation among the examples the context guard dropped 3.8% of the
demo corpus's chunks and 5.1% of the third-party corpus's. The windows come from the README (package metadata) and
the docstrings of permissively licensed packages installed with Tessera — none of the packages whose documentation
is the third-party eval corpus, none of the demo corpus — cut the way ingest cuts chunks and the guard cuts windows.

    .venv/bin/python scripts/build_doc_examples.py [--count 1600] [--seed 0]
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata as metadata
import json
import random
import tempfile
from pathlib import Path

from guardrails.injection import InjectionPatterns, text_windows
from pipeline.config import ChunkingSettings
from pipeline.ingest.chunking import make_chunker
from pipeline.ingest.parse import parse_file

OUT = Path(__file__).resolve().parent.parent / "guardrails" / "data" / "doc_examples.jsonl"
# Distributions whose README is read (MIT, BSD, Apache-2.0, MPL-2.0 licensed); the third-party eval corpus's packages
# (attrs, click, httpx, jinja2, markupsafe, numpy, packaging, pydantic, requests, PyYAML) are deliberately absent.
README_DISTS = (
    "yarl", "tqdm", "litellm", "openai", "charset-normalizer", "tabulate", "prettytable", "python-dotenv",
    "threadpoolctl", "fastapi", "diskcache", "rich", "typer", "sse-starlette", "qdrant-client", "colorlog",
    "portalocker", "fsspec", "dill", "sortedcontainers", "psutil", "xxhash", "frozenlist", "propcache", "json_repair",
    "huggingface_hub", "accelerate", "sentence-transformers", "datasets", "sacrebleu", "gitpython", "optuna", "sympy",
    "starlette", "uvicorn", "alembic", "sqlalchemy", "tenacity", "filelock", "platformdirs", "cachetools",
    "jsonschema", "protobuf", "pyarrow", "scikit-learn", "joblib", "networkx", "pillow", "pygments", "markdown-it-py",
    "wrapt", "multidict", "aiohttp", "anyio", "sniffio", "h11", "certifi", "idna", "urllib3", "six", "python-dateutil",
    "pytz", "tzdata", "regex", "tokenizers", "safetensors", "gguf", "langgraph", "mcp", "beautifulsoup4", "soupsieve",
    "pypdf", "rouge-score", "nltk", "hypothesis", "pytest",
)
EVAL_CORPUS_DISTS = {"attrs", "click", "httpx", "jinja2", "markupsafe", "numpy", "packaging", "pydantic", "requests",
                     "pyyaml"}
# Import packages whose public docstrings are read (API-reference prose).
DOCSTRING_PACKAGES = (
    "more_itertools", "sortedcontainers", "diskcache", "fsspec", "rich", "tabulate", "tqdm", "dill", "portalocker",
    "cachetools", "tenacity", "filelock", "platformdirs", "networkx", "joblib", "anyio", "starlette", "alembic",
)
MAX_DOCSTRINGS = 400  # per package, so that one large package does not dominate
MAX_WINDOW_CHARS = 600


def _chunks(path: Path, chunker) -> list[str]:
    return [chunk.text for section in parse_file(path) for chunk in chunker.split(section, path.name)
            if chunk.text.strip()]


def _docstrings(package: str) -> list[str]:
    spec_root = Path(metadata.distribution("tqdm").locate_file("")) / package
    docs: list[str] = []
    for path in sorted(spec_root.rglob("*.py")):
        if "tests" in path.parts or "test" in path.name:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                if isinstance(node, ast.FunctionDef) and node.name.startswith("_"):
                    continue
                text = ast.get_docstring(node)
                if text and len(text) > 60:
                    docs.append(text)
    return docs[:MAX_DOCSTRINGS]


def collect(chunker) -> list[tuple[str, str]]:
    """(source, window) for every window of every chunk of every source, duplicates and regex matches left out."""
    patterns = InjectionPatterns()
    items: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as folder:
        for name in README_DISTS:
            try:
                dist = metadata.distribution(name)
            except metadata.PackageNotFoundError:
                continue
            if dist.metadata["Name"].lower() in EVAL_CORPUS_DISTS:
                continue
            body = dist.metadata.get_payload() or ""
            if len(body) >= 200:
                path = Path(folder) / f"{name}.md"
                path.write_text(body, encoding="utf-8")
                items += [(name, chunk) for chunk in _chunks(path, chunker)]
        for package in DOCSTRING_PACKAGES:
            docs = _docstrings(package)
            if (Path(metadata.distribution("tqdm").locate_file("")) / package).exists():
                path = Path(folder) / f"{package}.txt"
                path.write_text("\n\n".join(docs), encoding="utf-8")
                items += [(package, chunk) for chunk in _chunks(path, chunker)]
    seen: set[str] = set()
    windows = []
    for source, chunk in items:
        for window in text_windows(chunk):
            if len(window) <= MAX_WINDOW_CHARS and window not in seen and not patterns.match(window):
                seen.add(window)
                windows.append((source, window))
    return windows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1600, help="windows to keep (a seeded sample)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = ChunkingSettings()
    windows = collect(make_chunker("structure", size=settings.size, overlap=settings.overlap))
    random.Random(args.seed).shuffle(windows)
    kept = sorted(windows[: args.count], key=lambda item: (item[0], item[1]))
    with OUT.open("w", encoding="utf-8") as out:
        for source, window in kept:
            out.write(json.dumps({"text": window, "label": "benign", "source": source}, ensure_ascii=False) + "\n")
    print(f"{len(kept)} of {len(windows)} windows from {len({s for s, _ in kept})} sources -> {OUT}")


if __name__ == "__main__":
    main()
