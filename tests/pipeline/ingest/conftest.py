"""Fixtures the ingest tests share: an embedded store in the test's folder and an Ingestor on it."""

import pytest

from pipeline.ingest.chunking import make_chunker
from pipeline.ingest.sync import Ingestor
from pipeline.store.factory import open_store


@pytest.fixture
def store(tmp_path):
    with open_store(path=tmp_path / "store") as opened:
        yield opened


@pytest.fixture
def ingestor(store, hashing_embedder):
    return Ingestor(store, "docs", hashing_embedder, make_chunker("structure", size=80, overlap=10), batch_size=4)
