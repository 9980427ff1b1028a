import subprocess
import sys
import zlib

import pytest

from guardrails.normalize import s_stem
from pipeline.store.bm25 import Bm25Encoder, SparseVector, token_id


def test_tokenize_lowercases_splits_unicode_words_and_drops_stopwords():
    encoder = Bm25Encoder()
    assert encoder.tokenize("The Café serves a naïve Crème-brûlée, and it's 42!") == [
        "café",
        "serve",
        "naïve",
        "crème",
        "brûlée",
        "42",
    ]


def test_tokenize_drops_overlong_tokens():
    assert Bm25Encoder().tokenize("x" * 41 + " kept") == ["kept"]


@pytest.mark.parametrize(
    ("word", "stem"),
    [("vectors", "vector"), ("queries", "query"), ("indexes", "indexe"), ("class", "class"), ("status", "status"), ("is", "is")],
)
def test_s_stem_folds_plurals_only(word, stem):
    assert s_stem(word) == stem


def test_stemming_can_be_turned_off():
    assert Bm25Encoder(stem=False).tokenize("vectors") == ["vectors"]


def test_token_ids_are_crc32_and_stable_across_processes():
    assert token_id("qdrant") == zlib.crc32(b"qdrant") == 960205894
    other = subprocess.run(
        [sys.executable, "-c", "from pipeline.store.bm25 import token_id; print(token_id('qdrant'), token_id('café'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert other.stdout.split() == [str(token_id("qdrant")), str(token_id("café"))]


def test_query_vector_has_each_distinct_term_once_with_weight_one():
    encoder = Bm25Encoder()
    vector = encoder.encode_query("Vector search, vector SEARCH and the vectors")
    assert vector.indices == sorted({token_id("vector"), token_id("search")})
    assert vector.values == [1.0, 1.0]


def test_query_of_only_stopwords_is_empty():
    assert Bm25Encoder().encode_query("the and of") == SparseVector()


def test_document_values_follow_bm25_term_frequency_saturation():
    encoder = Bm25Encoder(k1=1.2, b=0.75, avg_len=256)
    (vector,) = encoder.encode_documents(["apple apple banana"])
    values = dict(zip(vector.indices, vector.values))
    norm = 1.2 * (1 - 0.75 + 0.75 * 3 / 256)
    assert values[token_id("apple")] == pytest.approx(2 * 2.2 / (2 + norm))
    assert values[token_id("banana")] == pytest.approx(1 * 2.2 / (1 + norm))
    assert vector.indices == sorted(vector.indices)


def test_term_frequency_saturates_below_k1_plus_one_and_long_documents_weigh_less():
    encoder = Bm25Encoder()
    many, short, long = encoder.encode_documents(["apple " * 200, "apple", "apple " + "filler " * 500])
    assert many.values[0] < 1.2 + 1
    apple = token_id("apple")
    assert dict(zip(long.indices, long.values))[apple] < dict(zip(short.indices, short.values))[apple]


def test_empty_document_gives_empty_vector():
    assert Bm25Encoder().encode_documents(["", "..."]) == [SparseVector(), SparseVector()]


@pytest.mark.parametrize("kwargs", [{"k1": -1}, {"b": 1.5}, {"avg_len": 0}])
def test_invalid_parameters_are_rejected(kwargs):
    with pytest.raises(ValueError):
        Bm25Encoder(**kwargs)


def test_sparse_vector_needs_one_value_per_index():
    with pytest.raises(ValueError, match="one value per index"):
        SparseVector(indices=[1, 2], values=[1.0])
