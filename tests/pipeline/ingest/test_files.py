"""Links in an ingest folder: nothing outside the folder is read unless following links is asked for."""

import os

import pytest

from pipeline.ingest.chunking import make_chunker
from pipeline.ingest.sync import Ingestor
from pipeline.store.bm25 import Bm25Encoder

SECRET = "root:x:0:0:hunter2 secret password line\n"


def make_ingestor(store, embedder, **options):
    return Ingestor(store, "docs", embedder, make_chunker("structure", size=200, overlap=0), **options)


@pytest.fixture
def folders(tmp_path):
    """docs/ with one document, and outside/ with a secret that links in docs/ point to."""
    docs, outside = tmp_path / "docs", tmp_path / "outside"
    docs.mkdir()
    outside.mkdir()
    (docs / "guide.md").write_text("# Guide\n\nHow to rotate keys safely.\n", encoding="utf-8")
    (outside / "passwd.txt").write_text(SECRET, encoding="utf-8")
    return docs, outside


def texts(store):
    return [payload["text"] for _, payload in store.scan("docs", ["text"])]


def searchable(store, words):
    return store.search("docs", sparse=Bm25Encoder().encode_query(words), limit=10)


def test_a_link_to_a_file_outside_the_folder_is_skipped_with_the_reason(folders, store, hashing_embedder):
    docs, outside = folders
    os.symlink(outside / "passwd.txt", docs / "passwd.txt")
    report = make_ingestor(store, hashing_embedder).sync(docs)
    assert report.indexed == ["guide.md"]
    assert not any("hunter2" in text for text in texts(store))
    assert searchable(store, "hunter2 password") == []
    (reason,) = [why for source, why in report.skipped if source == "passwd.txt"]
    assert "outside the folder" in reason and "passwd.txt" in reason and "--follow-links" in reason


def test_a_link_to_a_folder_outside_is_not_entered(folders, store, hashing_embedder):
    docs, outside = folders
    os.symlink(outside, docs / "etc")
    report = make_ingestor(store, hashing_embedder).sync(docs)
    assert not any("hunter2" in text for text in texts(store))
    assert [source for source, _ in report.skipped] == ["etc"]
    assert "not followed" in report.skipped[0][1]


def test_a_link_that_stays_inside_the_folder_is_read(folders, store, hashing_embedder):
    docs, _ = folders
    os.symlink(docs / "guide.md", docs / "alias.md")
    report = make_ingestor(store, hashing_embedder).sync(docs)
    assert sorted(report.indexed) == ["alias.md", "guide.md"] and report.skipped == []


def test_follow_links_reads_outside_targets_and_enters_a_loop_only_once(folders, store, hashing_embedder):
    docs, outside = folders
    os.symlink(outside, docs / "etc")
    os.symlink(docs, docs / "loop")
    report = make_ingestor(store, hashing_embedder, follow_links=True).sync(docs)
    assert sorted(report.indexed) == ["etc/passwd.txt", "guide.md"]
    assert any("hunter2" in text for text in texts(store))
    assert [source for source, _ in report.skipped] == ["loop"]


def test_a_file_replaced_by_an_outside_link_during_the_ingest_is_not_read_and_its_old_chunks_go(
    folders, store, hashing_embedder
):
    docs, outside = folders
    (docs / "notes.md").write_text("# Notes\n\nOld notes about tokens.\n", encoding="utf-8")
    ingestor = make_ingestor(store, hashing_embedder)
    ingestor.sync(docs)

    def swap_after_the_first_file(event):
        # guide.md is reported before notes.md is read: swap notes.md for a link out of the folder.
        if event.source == "guide.md" and (docs / "notes.md").is_file() and not (docs / "notes.md").is_symlink():
            (docs / "notes.md").unlink()
            os.symlink(outside / "passwd.txt", docs / "notes.md")

    report = ingestor.sync(docs, progress=swap_after_the_first_file)
    assert [source for source, _ in report.skipped] == ["notes.md"]
    assert report.deleted == ["notes.md"]
    assert not any("hunter2" in text or "Old notes" in text for text in texts(store))


def test_a_pipe_in_the_folder_is_skipped_instead_of_blocking_the_ingest(folders, store, hashing_embedder):
    docs, _ = folders
    os.mkfifo(docs / "stream.txt")
    report = make_ingestor(store, hashing_embedder).sync(docs)
    assert report.indexed == ["guide.md"]
    assert [source for source, _ in report.skipped] == ["stream.txt"]
    assert "not a regular file" in report.skipped[0][1]
