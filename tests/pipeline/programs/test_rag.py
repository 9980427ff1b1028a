"""The RAG program: retrieve → rerank → generate, citing exactly the chunks the LM was given."""

import dspy
import pytest
from dspy.utils import DummyLM

from pipeline.errors import QueryError
from pipeline.lm.plain_adapter import PlainAdapter
from pipeline.programs.rag import RAG
from pipeline.retrieval.guarded import GuardedRetrieval

DOCS = {
    "keys.md": "# API keys\n\n## Rotation\n\nRotate API keys with corvidctl apikey rotate KEY_ID. The old key stays valid for 24 hours.\n",
    "ports.md": "# Ports\n\nThe admin API listens on port 9180 and the proxy on port 8443.\n",
    "logs.md": "# Logging\n\nLogs are written as JSON lines to /var/log/corvid/gateway.log.\n",
}


class CountingLM(DummyLM):
    def __init__(self, answers):
        super().__init__(answers)
        self.prompts = []

    def __call__(self, prompt=None, messages=None, **kwargs):
        self.prompts.append(messages)
        return super().__call__(prompt=prompt, messages=messages, **kwargs)


@pytest.fixture
def rag(indexed_retriever):
    return RAG(GuardedRetrieval(indexed_retriever(DOCS), top_n=2))


def test_answer_cites_the_chunks_given_to_the_lm(rag):
    lm = CountingLM([{"answer": "Run corvidctl apikey rotate KEY_ID."}])
    with dspy.context(lm=lm, adapter=PlainAdapter()):
        prediction = rag(question="How do I rotate the API keys?")
    assert "corvidctl apikey rotate" in prediction.answer
    assert len(prediction.citations) == len(prediction.contexts) == 2
    assert prediction.hits[0].chunk.source == "keys.md"
    assert [hit.chunk.id for hit in prediction.hits] == prediction.citations
    prompt = prediction_prompt(lm)
    for text in prediction.contexts:
        assert text.strip() in prompt
    assert "(keys.md > API keys > Rotation)" in prompt
    assert set(prediction.timings) == {"retrieve", "rerank", "generate"}


def prediction_prompt(lm):
    return "\n".join(message["content"] for message in lm.prompts[-1])


def test_predictor_is_an_attribute_optimizers_can_find(rag):
    names = [name for name, _ in rag.named_predictors()]
    assert names == ["generate"]


@pytest.mark.parametrize("question", ["", "   ", None])
def test_empty_questions_fail_before_any_lm_call(rag, question):
    lm = CountingLM([])
    with dspy.context(lm=lm, adapter=PlainAdapter()), pytest.raises(QueryError, match="empty"):
        rag(question=question)
    assert lm.prompts == []


def test_reranker_reorders_and_cuts_to_top_n(rag):
    class ReverseReranker:
        def rerank(self, query, hits, top_n):
            return list(reversed(hits))[:top_n]

    rag.retrieval.reranker = ReverseReranker()
    rag.retrieval.top_n = 1
    lm = CountingLM([{"answer": "ok"}])
    with dspy.context(lm=lm, adapter=PlainAdapter()):
        prediction = rag(question="How do I rotate the API keys?")
    assert len(prediction.citations) == 1
    assert prediction.hits[0].chunk.source != "keys.md"


def test_qa_set_errors_name_the_file_and_line(tmp_path):
    from pipeline.errors import EvalSetError
    from pipeline.qa_set import load_qa

    path = tmp_path / "qa.jsonl"
    path.write_text('{"question": "q", "answer": "a", "sources": ["x.md"]}\n{"question": "q2"\n')
    with pytest.raises(EvalSetError, match="qa.jsonl, line 2: not valid JSON"):
        load_qa(path)
    path.write_text('{"question": "q", "answer": "a"}\n')
    with pytest.raises(EvalSetError, match="line 1: missing sources"):
        load_qa(path)


def test_demo_qa_set_is_large_and_points_at_real_documents():
    from pipeline.qa_set import DEMO_CORPUS, load_qa

    examples = load_qa()
    assert len(examples) >= 150
    assert len(list(DEMO_CORPUS.rglob("*.md"))) >= 40
    missing = {source for example in examples for source in example.sources if not (DEMO_CORPUS / source).is_file()}
    assert missing == set()
