"""Metadata filters: the where-language parses into conditions, bad syntax points at the position, and both
backends return the same points for the same filter."""

import numpy as np
import pytest
from qdrant_client import QdrantClient

from pipeline.store.base import FieldMatch, FieldRange, SearchFilter
from pipeline.store.bm25 import Bm25Encoder
from pipeline.store.edge import EdgeStore
from pipeline.store.points import PointRecord, upsert_points
from pipeline.store.qdrant import QdrantStore
from pipeline.store.where import WhereSyntaxError, parse_where, where_filter

pytestmark = pytest.mark.filterwarnings("ignore:.*(local Qdrant|Local mode).*:UserWarning")


def test_conditions_joined_by_and_become_matches_and_ranges():
    assert parse_where('product = "gateway" AND version >= 4') == (
        FieldMatch("metadata.product", ("gateway",)), FieldRange("metadata.version", gte=4.0))
    assert parse_where("tier IN ('gold', 'silver') and beta != true AND score < 0.5") == (
        FieldMatch("metadata.tier", ("gold", "silver")), FieldMatch("metadata.beta", (True,), negate=True),
        FieldRange("metadata.score", lt=0.5))
    assert parse_where('source = "a.md" AND region NOT IN ("eu")') == (
        FieldMatch("source", ("a.md",)), FieldMatch("metadata.region", ("eu",), negate=True))


@pytest.mark.parametrize("text, problem, position", [
    ('product = gateway', "quote strings", 11),
    ('product = "gateway" version >= 4', "expected AND", 21),
    ('product >= "gateway"', "compares numbers", 12),
    ('product = "gateway', "unclosed quote", 11),
    ('product = "a" AND', "found the end of the filter", 18),
    ('product IN "a"', "expected '('", 12),
])
def test_bad_syntax_is_an_error_pointing_at_the_position(text, problem, position):
    with pytest.raises(WhereSyntaxError) as error:
        parse_where(text)
    message = str(error.value)
    assert problem in message and f"at position {position}:" in message
    caret_line = message.splitlines()[2]
    assert caret_line.index("^") - 2 == position - 1


def backend(kind, tmp_path):
    return EdgeStore(tmp_path / "store") if kind == "edge" else QdrantStore(client=QdrantClient(":memory:"))


def test_both_backends_return_the_same_points_for_the_same_filters(tmp_path):
    rng = np.random.default_rng(0)
    products = ["gateway", "broker", "cache"]
    records = [PointRecord(f"r{i}", f"note {i} about the {products[i % 3]}",
                           {"product": products[i % 3], "version": i % 7, "beta": i % 2 == 0, "score": i / 40},
                           rng.normal(size=8).tolist()) for i in range(40)]
    filters = ['product = "gateway" AND version >= 4', 'product IN ("broker", "cache") AND beta = true',
               "score < 0.3 AND version != 2", 'product != "gateway" AND score >= 0.5', "version = 3"]
    query = rng.normal(size=8).astype(np.float32)
    sparse = Bm25Encoder().encode_query("note about the gateway broker")
    results = {}
    for kind in ("edge", "qdrant"):
        with backend(kind, tmp_path) as store:
            upsert_points(store, "c", records, embedder_name="mine")
            results[kind] = [[hit.chunk.source for hit in store.search("c", dense=query, sparse=sparse, limit=40,
                                                                         filter=where_filter(text), exact=True)]
                             for text in filters]
    assert results["edge"] == results["qdrant"]
    expected_first = {f"c#r{i}" for i in range(40) if i % 3 == 0 and i % 7 >= 4}
    assert set(results["edge"][0]) == expected_first and expected_first
    assert all(f"c#r{i}" in results["edge"][4] for i in range(40) if i % 7 == 3)


def test_a_filter_narrows_another():
    wide = SearchFilter(sources=["a"], where=parse_where("version > 1"))
    narrowed = wide.narrowed(SearchFilter(where=parse_where('product = "x"')))
    assert narrowed.sources == ["a"] and len(narrowed.where) == 2
