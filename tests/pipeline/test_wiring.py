"""Objects built from the settings follow them: the ingest and tracing sections reach the Ingestor and RAG."""

import os

import pytest

from pipeline.config import load_settings
from pipeline.store import open_store
from pipeline.wiring import build_ingestor, build_rag


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in [name for name in os.environ if name.startswith("TESSERA_") and name != "TESSERA_LM"]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def linked_docs(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("# Secret\n\nthe root password\n")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\ntext about keys\n")
    (docs / "secret.md").symlink_to(outside / "secret.md")
    return docs


@pytest.mark.parametrize("follow", [False, True])
def test_ingest_follow_links_setting_decides_whether_a_link_out_of_the_folder_is_read(tmp_path, linked_docs, follow):
    (tmp_path / "tessera.yaml").write_text(f"ingest:\n  follow_links: {str(follow).lower()}\n")
    settings = load_settings(store={"path": str(tmp_path / "s")})
    with open_store(path=settings.store.path) as store:
        report = build_ingestor(settings, store).sync(linked_docs)
    assert ("secret.md" in report.indexed) is follow
    assert any(source == "secret.md" for source, _ in report.skipped) is not follow


@pytest.mark.parametrize("record", [False, True])
def test_tracing_record_questions_setting_reaches_the_program(tmp_path, record):
    settings = load_settings(tracing={"record_questions": record}, store={"path": str(tmp_path / "s")})
    with open_store(path=settings.store.path) as store:
        rag = build_rag(settings, store)
        assert rag.record_question is record and rag.retrieval.record_query is record


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_embedder_dtype_setting_reaches_the_embedder(tmp_path, dtype):
    settings = load_settings(embedder_dtype=dtype, store={"path": str(tmp_path / "s")})
    with open_store(path=settings.store.path) as store:
        assert build_ingestor(settings, store).embedder.dtype == dtype
