import subprocess
import sys

import pytest

from pipeline.store.bm25 import Bm25Encoder, SparseVector


def term_id(word: str) -> int:
    (index,) = Bm25Encoder().encode_query(word).indices
    return index


def test_query_terms_are_lowercased_stemmed_and_stopwords_dropped():
    encoder = Bm25Encoder()
    assert encoder.encode_query("The Vectors of the SEARCH") == encoder.encode_query("vector search")
    assert len(encoder.encode_query("Café crème-brûlée 42").indices) == 4


def test_vectors_are_the_same_in_every_process():
    text = "Qdrant café indexes"
    other = subprocess.run(
        [sys.executable, "-c", f"from pipeline.store.bm25 import Bm25Encoder; print(Bm25Encoder().encode_query({text!r}))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert other.stdout.strip() == str(Bm25Encoder().encode_query(text))


def test_query_vector_has_each_distinct_term_once_with_weight_one():
    encoder = Bm25Encoder()
    vector = encoder.encode_query("Vector search, vector SEARCH and the vectors")
    assert sorted(vector.indices) == sorted({term_id("vector"), term_id("search")})
    assert vector.values == [1.0, 1.0]


def test_query_of_only_stopwords_is_empty():
    assert Bm25Encoder().encode_query("the and of") == SparseVector()


def test_document_values_follow_bm25_term_frequency_saturation():
    encoder = Bm25Encoder(k1=1.2, b=0.75, avg_len=256)
    # Stopwords count neither as terms nor towards the document's length.
    (vector,) = encoder.encode_documents(["the apple and an apple of banana"])
    values = dict(zip(vector.indices, vector.values))
    norm = 1.2 * (1 - 0.75 + 0.75 * 3 / 256)
    assert values[term_id("apple")] == pytest.approx(2 * 2.2 / (2 + norm))
    assert values[term_id("banana")] == pytest.approx(1 * 2.2 / (1 + norm))


def test_term_frequency_saturates_below_k1_plus_one_and_long_documents_weigh_less():
    encoder = Bm25Encoder()
    many, short, long = encoder.encode_documents(["apple " * 200, "apple", "apple " + "filler " * 500])
    assert many.values[0] < 1.2 + 1
    apple = term_id("apple")
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
