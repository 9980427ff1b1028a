"""The progress callback moves within a large file (chunks and bytes), and reports every file once it is done."""


from pipeline.ingest.chunking import make_chunker
from pipeline.ingest.sync import Ingestor

PARAGRAPH = "Ünïcode words about keys, tokens and rotation schedules for the service accounts.\n\n"


def test_progress_moves_within_one_large_file_by_chunks_and_bytes(tmp_path, store, hashing_embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "big.txt").write_text(PARAGRAPH * 3000, encoding="utf-8")
    size = (docs / "big.txt").stat().st_size
    events = []
    ingestor = Ingestor(store, "docs", hashing_embedder, make_chunker("structure", size=400, overlap=0), batch_size=64)

    report = ingestor.sync(docs, progress=events.append)

    writing = [event for event in events if event.status == "writing"]
    assert len(writing) >= 10
    assert all(event.source == "big.txt" and event.files_done == 0 and event.files_total == 1 for event in writing)
    chunks = [event.chunks for event in writing]
    done = [event.bytes_done for event in writing]
    assert chunks == sorted(chunks) and len(set(chunks)) == len(chunks)
    assert done == sorted(done) and 0 < done[0] and done[-1] < size
    # Progress is proportional through the file: half the chunks written, about half the bytes.
    middle = writing[len(writing) // 2]
    assert abs(middle.bytes_done / size - middle.chunks / report.chunks_written) < 0.05
    final = events[-1]
    assert (final.status, final.chunks, final.files_done) == ("indexed", report.chunks_written, 1)
    assert final.bytes_done == final.bytes_total == size


def test_every_file_gets_one_final_event_with_what_became_of_it(tmp_path, store, hashing_embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("a.md", "b.md", "c.md"):
        (docs / name).write_text(f"# {name}\n\ntext of {name}\n", encoding="utf-8")
    ingestor = Ingestor(store, "docs", hashing_embedder, make_chunker("structure", size=400, overlap=0))
    ingestor.sync(docs)
    (docs / "b.md").write_bytes(b"\x00binary")
    (docs / "c.md").unlink()
    (docs / "d.md").write_text("# d\n\nnew text\n", encoding="utf-8")
    events = []

    ingestor.sync(docs, progress=events.append)

    final = {event.source: event.status for event in events if event.status != "writing"}
    assert final == {"a.md": "unchanged", "b.md": "failed", "d.md": "indexed", "c.md": "deleted"}
    assert events[-1].files_done == events[-1].files_total == 3
    assert events[-1].bytes_done == events[-1].bytes_total
