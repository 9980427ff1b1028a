"""End to end on the real bundled models: ingest the demo docs, answer with citations, offline."""

import dspy
import pytest

from pipeline.ingest.chunking import make_chunker
from pipeline.ingest.sync import Ingestor
from pipeline.lm.plain_adapter import PlainAdapter
from pipeline.programs.rag import RAG
from pipeline.qa_set import DEMO_CORPUS
from pipeline.retrieval.guarded import GuardedRetrieval
from pipeline.retrieval.rerank import MaxSimReranker
from pipeline.retrieval.retriever import HybridRetriever
from pipeline.store.factory import open_store


@pytest.mark.slow
def test_question_about_key_rotation_is_answered_from_the_right_document(tmp_path, minilm, smollm2):
    with open_store(path=tmp_path / "store") as store:
        Ingestor(store, "demo", minilm, make_chunker("structure", size=800, overlap=100)).sync(DEMO_CORPUS / "security")
        rag = RAG(GuardedRetrieval(HybridRetriever(store, "demo", minilm), MaxSimReranker(minilm), top_n=3))
        with dspy.context(lm=smollm2, adapter=PlainAdapter()):
            prediction = rag(question="How do I rotate the API keys?")
    assert prediction.hits[0].chunk.source.startswith("api-keys")
    assert prediction.answer.strip()
    assert len(prediction.citations) == 3
