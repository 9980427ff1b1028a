"""The bundled QA eval sets: gold sources exist, gold answers are in them, ids are unique, the sets are large,
and the third-party corpus names where each of its packages came from and under which license."""

import re
from pathlib import Path

import pytest

from pipeline.ingest.parse import SUPPORTED_SUFFIXES, parse_file
from pipeline.qa_set import DEMO_CORPUS, DEMO_QA, load_qa

EVAL_SETS = Path(__file__).resolve().parent.parent / "eval_sets"
THIRD_PARTY_CORPUS = EVAL_SETS / "thirdparty"
THIRD_PARTY_QA = EVAL_SETS / "qa_thirdparty.jsonl"
NOTICE = THIRD_PARTY_CORPUS / "NOTICE"
LICENSES = THIRD_PARTY_CORPUS / "LICENSES"

QA_SETS = {"demo": (DEMO_QA, DEMO_CORPUS), "thirdparty": (THIRD_PARTY_QA, THIRD_PARTY_CORPUS)}


def _normalised(text: str) -> str:
    """Case and whitespace folded; inline markup dropped (``code`` backticks, *emphasis* asterisks next to a word),
    so a gold answer may quote `Timeout(5.0)` where the docstring writes ``Timeout(5.0)``."""
    text = text.replace("`", "")
    text = re.sub(r"\*+(?=\w)|(?<=\w)\*+", "", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def _notice_entries() -> dict[str, dict[str, str]]:
    """NOTICE as {folder: {"package": ..., "license": ..., "license text": ..., "source": ...}}."""
    entries: dict[str, dict[str, str]] = {}
    current = None
    for line in NOTICE.read_text(encoding="utf-8").splitlines():
        if line.startswith("folder: "):
            current = entries.setdefault(line.removeprefix("folder: ").strip(), {})
        elif current is not None and line.startswith("  ") and ": " in line:
            key, value = line.strip().split(": ", 1)
            current[key] = value
    return entries


@pytest.fixture(scope="module", params=sorted(QA_SETS))
def qa_set(request):
    qa_path, corpus = QA_SETS[request.param]
    return request.param, load_qa(qa_path), corpus


def test_every_gold_source_is_a_file_of_its_corpus(qa_set):
    name, examples, corpus = qa_set
    missing = sorted({source for example in examples for source in example.sources if not (corpus / source).is_file()})
    assert missing == [], f"{name}: gold sources not under {corpus}"


def test_ids_are_present_and_unique_and_the_set_is_large(qa_set):
    name, examples, _ = qa_set
    ids = [example.id for example in examples]
    assert all(ids), f"{name}: every row needs an id"
    duplicates = sorted({row_id for row_id in ids if ids.count(row_id) > 1})
    assert duplicates == [], f"{name}: duplicate ids"
    assert len(examples) >= 150


def test_third_party_answers_are_phrases_of_their_gold_sources():
    examples = load_qa(THIRD_PARTY_QA)
    texts = {
        path.relative_to(THIRD_PARTY_CORPUS).as_posix(): _normalised(path.read_text(encoding="utf-8"))
        for path in THIRD_PARTY_CORPUS.rglob("*.md")
    }
    unsupported = [
        (example.id, example.answer)
        for example in examples
        if not any(_normalised(example.answer) in texts.get(source, "") for source in example.sources)
    ]
    assert unsupported == []


def test_third_party_questions_cover_every_package():
    examples = load_qa(THIRD_PARTY_QA)
    asked = {source.split("/", 1)[0] for example in examples for source in example.sources}
    folders = {path.name for path in THIRD_PARTY_CORPUS.iterdir() if path.is_dir() and path != LICENSES}
    assert asked == folders


def test_notice_names_every_package_folder_with_its_version_license_and_license_text():
    entries = _notice_entries()
    folders = {path.name for path in THIRD_PARTY_CORPUS.iterdir() if path.is_dir() and path != LICENSES}
    assert set(entries) == folders
    for folder, entry in entries.items():
        package = entry.get("package", "")
        assert re.fullmatch(r"\S+ \d[\w.]* \(PyPI\)", package), f"{folder}: want 'package: NAME VERSION (PyPI)'"
        assert entry.get("license"), f"{folder}: no license named"
        named = [path.strip() for path in entry.get("license text", "").split(",") if path.strip()]
        license_files = [THIRD_PARTY_CORPUS / path for path in named]
        assert license_files and all(path.is_file() and path.stat().st_size > 0 for path in license_files), folder


def test_third_party_corpus_ingests_as_markdown_and_its_notices_are_left_out():
    documents = sorted(THIRD_PARTY_CORPUS.rglob("*.md"))
    assert 40 <= len(documents) <= 80
    assert sum(path.stat().st_size for path in documents) < 2_000_000
    # The license texts must ship with the corpus but must not be indexed as documentation.
    others = [path for path in THIRD_PARTY_CORPUS.rglob("*") if path.is_file() and path.suffix != ".md"]
    assert NOTICE in others and all(path.suffix.lower() not in SUPPORTED_SUFFIXES for path in others)
    # Every '# module' / '## Name' line written must open a section of its own: a docstring line that Markdown
    # reads as a heading or as an unclosed code fence would split a section or swallow the ones after it.
    for path in documents:
        written = [line for line in path.read_text(encoding="utf-8").splitlines() if re.match(r"#{1,2} ", line)]
        parsed = [heading for heading in (section.heading for section in parse_file(path)) if heading]
        opened = [heading for index, heading in enumerate(parsed) if index == 0 or heading != parsed[index - 1]]
        assert len(opened) == len(written) and all(len(heading) <= 2 for heading in opened), path
