"""Ingest is a sync: unchanged files write nothing, changes replace, deletions remove, a killed run recovers."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.errors import IngestError
from pipeline.ingest.chunking import make_chunker
from pipeline.ingest.sync import Ingestor
from pipeline.store import open_store
from pipeline.store.bm25 import Bm25Encoder

DOC = "# {title}\n\n## Setup\n\n{body} setup steps for {title}.\n\n## Usage\n\nUse {title} with care; {body}.\n"


def write_docs(folder: Path, count: int = 3) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"doc{i}.md").write_text(DOC.format(title=f"Topic {i}", body=f"alpha beta {i}"), encoding="utf-8")


def points(store, collection="docs"):
    return {point_id: payload for point_id, payload in store.scan(collection, ["source", "file_hash", "text"])}


def test_first_ingest_indexes_every_file_with_citable_chunks(tmp_path, ingestor, store):
    write_docs(tmp_path / "docs")
    report = ingestor.sync(tmp_path / "docs")
    assert sorted(report.indexed) == ["doc0.md", "doc1.md", "doc2.md"]
    assert report.chunks_written == store.count("docs") > 3
    hits = store.scan("docs", ["source", "heading", "start", "end"])
    assert all(payload["source"].startswith("doc") and payload["end"] > payload["start"] for _, payload in hits)


def test_rerun_on_unchanged_files_writes_nothing(tmp_path, ingestor, store, hashing_embedder):
    write_docs(tmp_path / "docs")
    ingestor.sync(tmp_path / "docs")
    before = points(store)
    calls = hashing_embedder.calls
    report = ingestor.sync(tmp_path / "docs")
    assert report.indexed == [] and report.chunks_written == 0 and report.chunks_deleted == 0
    assert sorted(report.unchanged) == ["doc0.md", "doc1.md", "doc2.md"]
    assert hashing_embedder.calls == calls
    assert points(store) == before


def test_changed_file_replaces_its_chunks_and_deleted_file_goes_away(tmp_path, ingestor, store):
    docs = tmp_path / "docs"
    write_docs(docs)
    ingestor.sync(docs)
    (docs / "doc1.md").write_text("# Topic 1\n\nCompletely new gamma delta text.\n", encoding="utf-8")
    (docs / "doc2.md").unlink()
    report = ingestor.sync(docs)
    assert report.indexed == ["doc1.md"] and report.deleted == ["doc2.md"]
    by_source = {}
    for payload in points(store).values():
        by_source.setdefault(payload["source"], []).append(payload["text"])
    assert set(by_source) == {"doc0.md", "doc1.md"}
    assert all("gamma" in text or "Topic 1" in text for text in by_source["doc1.md"])
    assert not any("alpha beta 1" in text for text in by_source["doc1.md"])


def test_unsupported_and_broken_files_are_skipped_and_listed(tmp_path, ingestor, store):
    docs = tmp_path / "docs"
    write_docs(docs, 1)
    (docs / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (docs / "blob.txt").write_bytes(b"\x00\x01\x02binary")
    report = ingestor.sync(docs)
    assert report.indexed == ["doc0.md"]
    assert [source for source, _ in report.skipped] == ["image.png"]
    assert "unsupported file type .png" in report.skipped[0][1]
    assert [source for source, _ in report.failed] == ["blob.txt"]


def test_broken_new_version_keeps_the_old_chunks_searchable(tmp_path, ingestor, store):
    docs = tmp_path / "docs"
    write_docs(docs, 1)
    ingestor.sync(docs)
    before = points(store)
    (docs / "doc0.md").write_bytes(b"\xff\xfe\x00garbage")
    report = ingestor.sync(docs)
    assert [source for source, _ in report.failed] == ["doc0.md"]
    assert points(store) == before


@pytest.mark.parametrize("setup", ["missing", "empty", "only_unsupported", "file"])
def test_bad_folders_fail_clearly_and_lose_nothing(tmp_path, ingestor, store, setup):
    docs = tmp_path / "docs"
    write_docs(docs, 2)
    ingestor.sync(docs)
    before = points(store)
    target = tmp_path / "other"
    if setup == "empty":
        target.mkdir()
    elif setup == "only_unsupported":
        target.mkdir()
        (target / "a.png").write_bytes(b"png")
    elif setup == "file":
        target = docs / "doc0.md"
    with pytest.raises(IngestError) as error:
        ingestor.sync(target)
    assert str(target.name) in str(error.value) or "does not exist" in str(error.value)
    assert points(store) == before


def test_two_folders_share_a_collection_without_deleting_each_other(tmp_path, ingestor, store):
    write_docs(tmp_path / "a", 2)
    write_docs(tmp_path / "b", 2)
    ingestor.sync(tmp_path / "a")
    ingestor.sync(tmp_path / "b")
    roots = {payload["root"] for _, payload in store.scan("docs", ["root"])}
    assert roots == {str((tmp_path / "a").resolve()), str((tmp_path / "b").resolve())}


CHILD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    from conftest import HashingEmbedder
    from pipeline.ingest.chunking import make_chunker
    from pipeline.ingest.sync import Ingestor
    from pipeline.store import open_store

    class SlowEmbedder(HashingEmbedder):
        def encode(self, texts):
            if self.calls == 3:
                print("BATCHES_WRITTEN", flush=True)
            if self.calls >= 3:
                time.sleep(0.2)
            return super().encode(texts)

    with open_store(path={store!r}) as store:
        Ingestor(store, "docs", SlowEmbedder(), make_chunker("structure", size=80, overlap=10), batch_size=4).sync({docs!r})
    print("DONE", flush=True)
    """
)


def kill_an_ingest_half_way(tmp_path, embedder) -> Path:
    """Index two files, then change one, add ten, and SIGKILL the ingest of that after three written batches."""
    docs = tmp_path / "docs"
    write_docs(docs, 2)
    with open_store(path=tmp_path / "store") as store:
        Ingestor(store, "docs", embedder, make_chunker("structure", size=80, overlap=10), batch_size=4).sync(docs)
    # Change one file, add several: the killed run has old, new and half-written files in flight.
    (docs / "doc0.md").write_text("# Topic 0\n\nRewritten zeta text about topic zero.\n", encoding="utf-8")
    for i in range(2, 12):
        (docs / f"doc{i}.md").write_text(DOC.format(title=f"Topic {i}", body=f"alpha beta {i}"), encoding="utf-8")

    script = CHILD.format(tests=str(Path(__file__).parents[2]), store=str(tmp_path / "store"), docs=str(docs))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "BATCHES_WRITTEN"
    time.sleep(0.1)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    return docs


def test_ingest_killed_half_way_ends_with_exactly_the_right_chunks_on_rerun(tmp_path, hashing_embedder):
    docs = kill_an_ingest_half_way(tmp_path, hashing_embedder)
    with open_store(path=tmp_path / "store") as store:
        Ingestor(store, "docs", hashing_embedder, make_chunker("structure", size=80, overlap=10), batch_size=4).sync(docs)
        recovered = points(store)
    with open_store(path=tmp_path / "fresh") as fresh:
        Ingestor(fresh, "docs", hashing_embedder, make_chunker("structure", size=80, overlap=10), batch_size=4).sync(docs)
        expected = points(fresh)
    assert recovered == expected


def complete_versions(store):
    """Ids of the points that belong to a fully written, unstaged file version."""
    versions = {}
    for point_id, payload in store.scan("docs", ["source", "file_hash", "chunk_count", "staged"]):
        version = versions.setdefault((payload["source"], payload["file_hash"]), {"ids": set(), "count": None})
        version["ids"].add(point_id)
        version["staged"] = version.get("staged", False) or bool(payload.get("staged"))
        if payload.get("chunk_count") is not None:
            version["count"] = payload["chunk_count"]
    complete = set()
    for version in versions.values():
        if not version["staged"] and version["count"] == len(version["ids"]):
            complete |= version["ids"]
    return complete


def searched_ids(store, embedder, queries):
    bm25 = Bm25Encoder()
    found = set()
    for query in queries:
        dense, sparse = embedder.encode([query])[0], bm25.encode_query(query)
        for legs in ({"dense": dense}, {"sparse": sparse}, {"dense": dense, "sparse": sparse}):
            found |= {hit.chunk.id for hit in store.search("docs", **legs, limit=100, exact=True)}
    return found


QUERIES = ["zeta text about topic zero", "care setup steps", *(f"alpha beta {i} Topic {i}" for i in range(12))]


def test_after_a_killed_ingest_no_search_returns_a_half_written_file(tmp_path, hashing_embedder):
    kill_an_ingest_half_way(tmp_path, hashing_embedder)
    with open_store(path=tmp_path / "store") as store:
        staged = [point_id for point_id, payload in store.scan("docs", ["staged"]) if payload.get("staged")]
        assert staged, "the kill should have left a file half-written"
        found = searched_ids(store, hashing_embedder, QUERIES)
        assert found and found <= complete_versions(store)


class ProbingEmbedder:
    """Runs `probe` before every embedding call, that is, between the ingest's writes."""

    def __init__(self, inner, probe) -> None:
        self.inner, self.probe, self.dim = inner, probe, inner.dim

    def encode(self, texts):
        self.probe()
        return self.inner.encode(texts)


def test_during_an_ingest_a_file_switches_from_its_old_version_to_its_new_one_at_once(tmp_path, store, hashing_embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    old = "".join(f"# Part {i}\n\nalpha old words in part {i}.\n\n" for i in range(12))
    new = "".join(f"# Part {i}\n\nomega new words in part {i}.\n\n" for i in range(12))
    (docs / "big.md").write_text(old, encoding="utf-8")
    chunker = make_chunker("structure", size=80, overlap=0)
    Ingestor(store, "docs", hashing_embedder, chunker, batch_size=4).sync(docs)
    (docs / "big.md").write_text(new, encoding="utf-8")
    seen = []

    def probe():
        texts = {hit.chunk.text for hit in store.search("docs", sparse=Bm25Encoder().encode_query("alpha omega words"), limit=100)}
        seen.append((sum("alpha" in text for text in texts), sum("omega" in text for text in texts)))

    Ingestor(store, "docs", ProbingEmbedder(hashing_embedder, probe), chunker, batch_size=4).sync(docs)
    assert len(seen) >= 3  # the file was written in several batches, and searched between them
    assert all(counts == (12, 0) for counts in seen)
    after = {hit.chunk.text for hit in store.search("docs", sparse=Bm25Encoder().encode_query("alpha omega words"), limit=100)}
    assert sum("omega" in text for text in after) == 12 and not any("alpha" in text for text in after)
