"""Rerankers: ordering, ties, top_n, the MaxSim token cache, fusion, the factory and cross-encoder loading."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.documents import Chunk, Hit
from pipeline.errors import ConfigError
from pipeline.retrieval.rerank import (
    RERANKER_KINDS,
    CrossEncoderReranker,
    MaxSimReranker,
    make_reranker,
    maxsim_scores,
    rank_by_scores,
)


class WordEmbedder:
    """A fake TokenEmbedder: one one-hot vector per lower-cased word, so MaxSim counts query words found in a chunk."""

    dim = 32

    def __init__(self) -> None:
        self.vocabulary: dict[str, int] = {}
        self.encoded: list[str] = []

    def vector(self, word: str) -> np.ndarray:
        index = self.vocabulary.setdefault(word, len(self.vocabulary))
        vector = np.zeros(self.dim, dtype=np.float32)
        vector[index] = 1.0
        return vector

    def encode_tokens(self, texts: list[str]) -> list[np.ndarray]:
        self.encoded.extend(texts)
        return [np.stack([self.vector(word) for word in text.lower().split()]) for text in texts]

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.stack([tokens.mean(axis=0) for tokens in self.encode_tokens(texts)])


class DenseOnlyEmbedder:
    dim = 4

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.ones((len(texts), self.dim), dtype=np.float32) / 2


def hit(text: str, score: float = 0.0, source: str | None = None) -> Hit:
    return Hit(Chunk(text=text, source=source or f"{text}.md", heading=(), start=0, end=len(text)), score=score)


def texts(hits: list[Hit]) -> list[str]:
    return [h.chunk.text for h in hits]


@pytest.fixture
def embedder() -> WordEmbedder:
    return WordEmbedder()


def test_maxsim_sums_the_best_match_of_each_query_token():
    query = np.array([[1.0, 0.0], [0.0, 1.0]])
    docs = [np.array([[0.6, 0.8], [1.0, 0.0]]), np.zeros((0, 2)), np.array([[0.0, -1.0]]), np.array([[0.8, 0.6]])]
    assert maxsim_scores(query, docs) == pytest.approx([1.0 + 0.8, 0.0, 0.0 - 1.0, 0.8 + 0.6])
    assert maxsim_scores(np.zeros((0, 2)), docs) == [0.0] * 4
    assert maxsim_scores(query, []) == []


def test_maxsim_reranker_orders_by_query_words_found(embedder):
    hits = [hit("cats sleep", 0.9), hit("dogs bark loudly", 0.8), hit("dogs bark at cats", 0.7)]
    ranked = MaxSimReranker(embedder).rerank("do dogs bark", hits, top_n=3)
    assert texts(ranked) == ["dogs bark loudly", "dogs bark at cats", "cats sleep"]
    assert [h.score for h in ranked] == [2.0, 2.0, 0.0]


def test_ties_keep_incoming_order_and_top_n_cuts(embedder):
    hits = [hit("alpha one"), hit("alpha two"), hit("beta"), hit("alpha three")]
    ranked = MaxSimReranker(embedder).rerank("alpha", hits, top_n=2)
    assert texts(ranked) == ["alpha one", "alpha two"]


def test_empty_hits_give_empty_result_without_embedding(embedder):
    assert MaxSimReranker(embedder).rerank("anything", [], top_n=5) == []
    assert embedder.encoded == []


def test_top_n_above_hit_count_returns_every_hit(embedder):
    hits = [hit("a b"), hit("b c")]
    assert len(MaxSimReranker(embedder).rerank("c", hits, top_n=10)) == 2


@pytest.mark.parametrize("top_n", [0, -1, 2.5, True])
def test_bad_top_n_is_rejected(embedder, top_n):
    with pytest.raises(ValueError, match="top_n"):
        MaxSimReranker(embedder).rerank("q", [hit("x")], top_n=top_n)


def test_repeated_queries_embed_only_the_query(embedder):
    reranker = MaxSimReranker(embedder)
    hits = [hit("red apple"), hit("green pear")]
    reranker.rerank("apple", hits, top_n=2)
    assert embedder.encoded == ["apple", "red apple", "green pear"]
    embedder.encoded.clear()
    reranker.rerank("pear", hits, top_n=2)
    assert embedder.encoded == ["pear"]


def test_cache_evicts_least_recently_used_chunk(embedder):
    reranker = MaxSimReranker(embedder, cache_size=2)
    first, second, third = hit("one"), hit("two"), hit("three")
    reranker.rerank("q", [first, second], top_n=2)
    reranker.rerank("q", [first], top_n=1)  # touches `first`, so `second` is now the oldest
    reranker.rerank("q", [third], top_n=1)
    embedder.encoded.clear()
    reranker.rerank("q", [first, second, third], top_n=3)
    assert embedder.encoded == ["q", "two"]


def test_duplicate_chunks_are_embedded_once(embedder):
    same = hit("x y")
    ranked = MaxSimReranker(embedder).rerank("y", [same, same], top_n=2)
    assert embedder.encoded == ["y", "x y"]
    assert [h.score for h in ranked] == [1.0, 1.0]


def test_fusion_with_incoming_rank_uses_weighted_rrf(embedder):
    # MaxSim alone ranks "b c" first; with the retriever's order weighted in, "a" (incoming rank 1) wins.
    hits = [hit("a"), hit("b c")]
    reranker = MaxSimReranker(embedder, retrieval_weight=2.0, rrf_k=0)
    ranked = reranker.rerank("b c", hits, top_n=2)
    assert texts(ranked) == ["a", "b c"]
    assert [h.score for h in ranked] == pytest.approx([1 / 2 + 2 / 1, 1 / 1 + 2 / 2])


def test_maxsim_needs_token_embeddings():
    with pytest.raises(ConfigError, match="encode_tokens"):
        MaxSimReranker(DenseOnlyEmbedder())


def test_rank_by_scores_checks_lengths():
    with pytest.raises(ValueError, match="2 scores for 1 hits"):
        rank_by_scores([hit("x")], [1.0, 2.0], top_n=1)


def test_make_reranker_kinds(embedder):
    assert make_reranker("none", None, embedder) is None
    assert make_reranker("none", "ignored/model", None) is None
    assert isinstance(make_reranker("MaxSim", None, embedder), MaxSimReranker)


def test_make_reranker_unknown_kind_lists_valid_kinds(embedder):
    with pytest.raises(ConfigError) as error:
        make_reranker("colbert", None, embedder)
    for kind in RERANKER_KINDS:
        assert kind in str(error.value)


def test_make_reranker_rejects_conflicting_or_missing_arguments(embedder):
    with pytest.raises(ConfigError, match="needs a model"):
        make_reranker("cross-encoder", None, embedder)
    with pytest.raises(ConfigError, match="takes no model"):
        make_reranker("maxsim", "some/model", embedder)
    with pytest.raises(ConfigError, match="needs an embedder"):
        make_reranker("maxsim", None, None)


def test_cross_encoder_missing_path_says_what_to_pass(tmp_path):
    with pytest.raises(ConfigError, match="does not exist.*local folder"):
        CrossEncoderReranker(str(tmp_path / "no-such-model"))


def test_cross_encoder_folder_without_model_is_a_config_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ConfigError, match="cannot be loaded"):
        CrossEncoderReranker(str(tmp_path))


def test_cross_encoder_hub_name_not_in_cache_fails_offline():
    with pytest.raises(ConfigError, match="nor in the local Hugging Face cache"):
        CrossEncoderReranker("tessera-tests/no-such-cross-encoder")


def save_tiny_cross_encoder(folder, num_labels: int = 1) -> str:
    """A randomly initialised one-layer BERT scorer with the bundled MiniLM's tokenizer, saved as a local model."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from pipeline.retrieval.embed import bundled_minilm_path

    tokenizer = AutoTokenizer.from_pretrained(str(bundled_minilm_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=num_labels,
        initializer_range=0.5,  # wide weights, so random scores differ clearly between texts
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory) -> str:
    return save_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-cross-encoder"))


def test_cross_encoder_reorders_hits_by_its_own_scores(tiny_cross_encoder):
    reranker = CrossEncoderReranker(tiny_cross_encoder, batch_size=2)
    query = "how are retries configured"
    hits = [hit(t, score=1.0) for t in ["retries back off", "cache headers", "tls certificates", "health checks"]]
    expected = reranker.model.predict([(query, h.chunk.text) for h in hits], show_progress_bar=False)

    ranked = reranker.rerank(query, hits, top_n=3)

    best_first = sorted(range(len(hits)), key=lambda i: -expected[i])[:3]
    assert texts(ranked) == [hits[i].chunk.text for i in best_first]
    assert [h.score for h in ranked] == pytest.approx([float(expected[i]) for i in best_first], abs=1e-6)
    assert reranker.rerank(query, [], top_n=3) == []


def test_cross_encoder_with_several_labels_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="num_labels=1"):
        CrossEncoderReranker(save_tiny_cross_encoder(tmp_path / "nli", num_labels=3))


def test_make_reranker_builds_cross_encoder_from_local_folder(tiny_cross_encoder):
    assert isinstance(make_reranker("cross-encoder", tiny_cross_encoder, None), CrossEncoderReranker)


@pytest.mark.slow
def test_maxsim_with_bundled_minilm_lifts_the_relevant_passage_to_first(minilm):
    query = "How do I rotate the TLS certificate without restarting the gateway?"
    passages = [
        "Rate limiting caps how many requests a client may send per second; excess requests get HTTP 429.",
        "The gateway caches upstream responses in memory for the duration given by the Cache-Control header.",
        "Health checks probe each upstream every ten seconds and remove failing instances from the pool.",
        "To install on Linux, download the package for your distribution and start the service with systemctl.",
        "Certificates can be replaced while the gateway runs: copy the new certificate and key into the tls "
        "folder and send SIGHUP; connections in flight keep the old certificate.",
    ]
    hits = [hit(text, score=1.0 - rank / 10, source=f"doc{rank}.md") for rank, text in enumerate(passages)]

    ranked = MaxSimReranker(minilm).rerank(query, hits, top_n=5)

    assert ranked[0].chunk.source == "doc4.md"
    assert ranked[0].score > ranked[1].score
