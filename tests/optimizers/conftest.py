"""The scripted LM fixture, a small indexed RAG program to compile (and a flaky one), and MLflow stores per test."""

import dspy
import mlflow
import pytest

from pipeline.lm.scripted import FieldLM
from pipeline.programs.rag import RAG
from pipeline.retrieval.guarded import GuardedRetrieval

DOCS = {
    "keys.md": "# API keys\n\nRotate API keys with corvidctl apikey rotate. The old key stays valid for 24 hours.\n",
    "ports.md": "# Ports\n\nThe admin API listens on port 9180. The proxy listens on port 8443.\n",
    "limits.md": "# Rate limits\n\nThe default rate limit is 600 requests per minute per consumer.\n",
    "logs.md": "# Logs\n\nAccess logs are written to /var/log/corvid/access.log in JSON lines.\n",
}

QA = [
    ("How do I rotate API keys?", "corvidctl apikey rotate", "keys.md"),
    ("How long does the old key stay valid?", "24 hours", "keys.md"),
    ("Which port does the admin API listen on?", "9180", "ports.md"),
    ("Which port does the proxy listen on?", "8443", "ports.md"),
    ("What is the default rate limit?", "600 requests per minute", "limits.md"),
    ("Where are access logs written?", "/var/log/corvid/access.log", "logs.md"),
    ("What format are access logs in?", "JSON lines", "logs.md"),
    ("Is the rate limit per consumer?", "yes, per consumer", "limits.md"),
]


@pytest.fixture
def field_lm():
    lm = FieldLM()
    with dspy.context(lm=lm):
        yield lm


@pytest.fixture
def qa_examples():
    return [
        dspy.Example(id=f"q{i}", question=q, answer=a, sources=[s]).with_inputs("question")
        for i, (q, a, s) in enumerate(QA)
    ]


@pytest.fixture
def toy_rag(indexed_retriever):
    retriever = indexed_retriever(DOCS)
    return RAG(GuardedRetrieval(retriever, top_n=1))


class Flaky(dspy.Module):
    """A RAG program that fails on every question naming `word`, as when a store or a provider goes away."""

    def __init__(self, rag, word):
        super().__init__()
        self.rag = rag
        self.word = word

    def forward(self, question):
        if self.word in question:
            raise RuntimeError("store went away")
        return self.rag(question=question)


@pytest.fixture
def flaky_rag(toy_rag):
    return lambda word: Flaky(toy_rag, word)


@pytest.fixture(autouse=True)
def restore_tracking_uri():
    """Tests that point MLflow at their own store put the session's store back afterwards."""
    uri = mlflow.get_tracking_uri()
    yield
    mlflow.set_tracking_uri(uri)


@pytest.fixture
def tracked(tmp_path, monkeypatch):
    """An MLflow store of the test's own, experiment `tests`."""
    from optimizers.tracking import open_tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    open_tracking("tests")
