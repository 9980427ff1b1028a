"""A moved folder moves its chunks instead of copying them; prune removes folders that are gone."""

import shutil

from pipeline.ingest.chunking import make_chunker
from pipeline.ingest.sync import Ingestor
from pipeline.store import open_store

DOC = "# {title}\n\n## Setup\n\n{body} setup steps for {title}.\n\n## Usage\n\nUse {title} with care; {body}.\n"


def write_docs(folder, count=3):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"doc{i}.md").write_text(DOC.format(title=f"Topic {i}", body=f"alpha beta {i}"), encoding="utf-8")


def by_root(store):
    roots = {}
    for _, payload in store.scan("docs", ["root", "source"]):
        roots.setdefault(payload["root"], []).append(payload["source"])
    return {root: sorted(sources) for root, sources in roots.items()}


def test_a_moved_folder_is_moved_not_copied_and_nothing_is_embedded_again(tmp_path, ingestor, store, hashing_embedder):
    write_docs(tmp_path / "docs")
    ingestor.sync(tmp_path / "docs")
    before = store.count("docs")
    calls = hashing_embedder.calls
    (tmp_path / "docs").rename(tmp_path / "docs2")

    report = ingestor.sync(tmp_path / "docs2")

    assert store.count("docs") == before
    assert hashing_embedder.calls == calls
    old = str((tmp_path / "docs").resolve())
    assert report.moved == [(f"doc{i}.md", old) for i in range(3)]
    assert report.chunks_moved == before and report.indexed == [] and report.gone_roots == {}
    assert set(by_root(store)) == {str((tmp_path / "docs2").resolve())}
    assert any(line.startswith("moved: doc0.md (was indexed under ") for line in report.lines())
    assert ingestor.sync(tmp_path / "docs2").unchanged == ["doc0.md", "doc1.md", "doc2.md"]


def test_a_moved_folder_with_changes_reports_what_remains_and_prune_removes_it(tmp_path, ingestor, store, hashing_embedder):
    write_docs(tmp_path / "docs")
    ingestor.sync(tmp_path / "docs")
    (tmp_path / "docs").rename(tmp_path / "docs2")
    (tmp_path / "docs2" / "doc1.md").write_text("# Topic 1\n\nRewritten gamma text.\n", encoding="utf-8")
    (tmp_path / "docs2" / "doc2.md").unlink()

    report = ingestor.sync(tmp_path / "docs2")

    old = str((tmp_path / "docs").resolve())
    assert [source for source, _ in report.moved] == ["doc0.md"] and report.indexed == ["doc1.md"]
    remaining = len(by_root(store)[old])
    assert report.gone_roots == {old: remaining} and remaining > 0
    assert any("--prune" in line for line in report.lines())

    assert ingestor.prune() == {old: remaining}
    with open_store(path=tmp_path / "fresh") as fresh:
        Ingestor(fresh, "docs", hashing_embedder, make_chunker("structure", size=80, overlap=10)).sync(tmp_path / "docs2")
        assert store.count("docs") == fresh.count("docs")
    assert ingestor.prune() == {}


def test_prune_keeps_folders_that_exist_and_a_copy_is_indexed_beside_its_original(tmp_path, ingestor, store):
    write_docs(tmp_path / "a", 2)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    write_docs(tmp_path / "c", 1)
    for name in "abc":
        ingestor.sync(tmp_path / name)
    assert ingestor.sync(tmp_path / "b").moved == []  # a still exists: b is a copy, not a move
    gone = str((tmp_path / "c").resolve())
    chunks_of_c = len(by_root(store)[gone])
    shutil.rmtree(tmp_path / "c")

    assert ingestor.prune() == {gone: chunks_of_c}
    assert set(by_root(store)) == {str((tmp_path / "a").resolve()), str((tmp_path / "b").resolve())}
    assert by_root(store)[str((tmp_path / "a").resolve())] == by_root(store)[str((tmp_path / "b").resolve())]
