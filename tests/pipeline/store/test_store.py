import random
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from qdrant_client import QdrantClient

from pipeline.documents import Chunk
from pipeline.errors import CollectionNotFoundError, StoreError, StoreLockedError
from pipeline.store.base import RRF_K, SearchFilter, VectorStore, fuse_rankings, rank_by_score
from pipeline.store.bm25 import Bm25Encoder, SparseVector
from pipeline.store.edge import EdgeStore
from pipeline.store.factory import open_store
from pipeline.store.qdrant import QdrantStore

# Local-mode qdrant-client warns that payload indexes and `exact` have no effect there; both are meant for a server.
pytestmark = pytest.mark.filterwarnings("ignore:.*(local Qdrant|Local mode).*:UserWarning")

DIM = 32
WORDS = [f"term{i}" for i in range(80)]
SOURCES = [f"docs/file{i}.md" for i in range(7)]
ENCODER = Bm25Encoder()


def make_store(kind: str, tmp_path) -> VectorStore:
    if kind == "edge":
        return EdgeStore(tmp_path / "store")
    return QdrantStore(client=QdrantClient(":memory:"))


@pytest.fixture(params=["edge", "qdrant"])
def store(request, tmp_path):
    store = make_store(request.param, tmp_path)
    yield store
    store.close()


def make_corpus(n: int = 200, dim: int = DIM, seed: int = 0):
    """Chunks with random texts over a small vocabulary (so BM25 scores tie often) and random vectors."""
    rng = random.Random(seed)
    chunks = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 60)))
        tags = tuple(tag for tag, every in (("faq", 3), ("api", 5)) if i % every == 0)
        chunks.append(
            Chunk(text=text, source=SOURCES[i % len(SOURCES)], heading=("Guide", f"Part {i}"), start=i * 100, end=i * 100 + len(text), tags=tags)
        )
    dense = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return chunks, dense, ENCODER.encode_documents([chunk.text for chunk in chunks])


def random_queries(count: int, seed: int = 1):
    rng = random.Random(seed)
    vectors = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    for vector in vectors:
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
        yield vector, ENCODER.encode_query(words)


def filled(store: VectorStore, name: str = "docs", **corpus_kwargs):
    chunks, dense, sparse = make_corpus(**corpus_kwargs)
    store.ensure_collection(name, dense.shape[1])
    store.upsert(name, chunks, dense, sparse)
    return chunks, dense, sparse


# -- ranking rules ---------------------------------------------------------------------------------


def test_scores_within_float_noise_rank_as_ties_in_id_order():
    scored = [("b", 5.0000001), ("c", 7.0), ("a", 5.0), ("d", 4.0)]
    assert [point_id for point_id, _ in rank_by_score(scored, 3)] == ["c", "a", "b"]


def test_rrf_sums_reciprocal_ranks_and_breaks_ties_by_id():
    fused = fuse_rankings([[("x", 0.9), ("y", 0.8)], [("z", 12.0), ("x", 3.0)]], limit=3)
    assert fused == [("x", 1 / (RRF_K + 1) + 1 / (RRF_K + 2)), ("z", 1 / (RRF_K + 1)), ("y", 1 / (RRF_K + 2))]


# -- behaviour both backends share ------------------------------------------------------------


def test_ensure_collection_creates_once_and_lists_it(store):
    assert store.list_collections() == []
    store.ensure_collection("docs", DIM)
    store.ensure_collection("docs", DIM)
    store.ensure_collection("other", 8)
    assert store.has_collection("docs") and not store.has_collection("missing")
    assert store.list_collections() == ["docs", "other"]
    assert store.count("docs") == 0


def test_ensure_collection_with_another_dimension_says_what_to_do(store):
    store.ensure_collection("docs", DIM)
    with pytest.raises(StoreError, match=r"32-dimensional.*768.*another collection"):
        store.ensure_collection("docs", 768)


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden"])
def test_collection_names_must_be_safe_folder_names(store, name):
    with pytest.raises(StoreError, match="Invalid collection name"):
        store.ensure_collection(name, DIM)


def test_upsert_then_search_returns_the_chunk_as_stored(store):
    chunks, dense, _ = filled(store)
    assert store.count("docs") == len(chunks)
    (hit,) = store.search("docs", dense=dense[17], limit=1)
    assert hit.chunk == chunks[17]
    assert hit.score == pytest.approx(1.0, abs=1e-5)


def test_upsert_replaces_points_with_the_same_id(store):
    chunks, dense, sparse = filled(store, n=20)
    store.upsert("docs", chunks[:5], dense[:5], sparse[:5], extra=[{"version": 2}] * 5)
    assert store.count("docs") == 20
    versions = dict(store.scan("docs", ["version"]))
    assert sum(1 for payload in versions.values() if payload.get("version") == 2) == 5


def test_extra_payload_is_stored_but_may_not_overwrite_chunk_fields(store):
    chunks, dense, sparse = make_corpus(n=3)
    store.ensure_collection("docs", DIM)
    store.upsert("docs", chunks, dense, sparse, extra=[{"sha": f"h{i}"} for i in range(3)])
    assert sorted(payload["sha"] for _, payload in store.scan("docs", ["sha"])) == ["h0", "h1", "h2"]
    with pytest.raises(StoreError, match="overwrite"):
        store.upsert("docs", chunks[:1], dense[:1], sparse[:1], extra=[{"source": "elsewhere"}])


def test_upsert_checks_that_arguments_line_up(store):
    chunks, dense, sparse = make_corpus(n=4)
    store.ensure_collection("docs", DIM)
    with pytest.raises(ValueError, match="one row per chunk"):
        store.upsert("docs", chunks, dense[:3], sparse)
    with pytest.raises(ValueError, match="one vector per chunk"):
        store.upsert("docs", chunks, dense, sparse[:3])
    with pytest.raises(StoreError, match="dimensional"):
        store.upsert("docs", chunks, np.ones((4, 8), dtype=np.float32), sparse)


def test_bm25_search_weighs_rare_terms_by_idf(store):
    texts = ["common words here"] * 8 + ["common rare", "common common common"]
    chunks = [Chunk(text=text, source=f"s{i}", heading=(), start=0, end=len(text)) for i, text in enumerate(texts)]
    store.ensure_collection("docs", 4)
    store.upsert("docs", chunks, np.ones((len(chunks), 4), dtype=np.float32), ENCODER.encode_documents(texts))
    hits = store.search("docs", sparse=ENCODER.encode_query("common rare"), limit=3, exact=True)
    assert hits[0].chunk.text == "common rare"
    assert hits[0].score > 2 * hits[1].score
    assert store.search("docs", sparse=ENCODER.encode_query("absent"), limit=3) == []
    assert store.search("docs", sparse=SparseVector(), limit=3) == []


def test_hybrid_search_fuses_both_rankings_with_rrf(store):
    chunks, dense, sparse = filled(store)
    query = ENCODER.encode_query(chunks[42].text)
    hits = store.search("docs", dense=dense[42], sparse=query, limit=5, exact=True)
    assert hits[0].chunk.id == chunks[42].id
    # First in both lists: the best possible fused score.
    assert hits[0].score == pytest.approx(2 / (RRF_K + 1))
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_filters_restrict_sources_and_tags(store):
    chunks, dense, _ = filled(store)
    by_source = store.search("docs", dense=dense[0], limit=50, filter=SearchFilter(sources=SOURCES[:2]))
    assert by_source and {hit.chunk.source for hit in by_source} <= set(SOURCES[:2])
    by_tag = store.search("docs", dense=dense[0], limit=50, filter=SearchFilter(tags=["api", "nope"]))
    assert by_tag and all("api" in hit.chunk.tags for hit in by_tag)
    both = store.search("docs", dense=dense[0], limit=200, filter=SearchFilter(sources=[SOURCES[0]], tags=["faq"]))
    expected = {c.id for c in chunks if c.source == SOURCES[0] and "faq" in c.tags}
    assert {hit.chunk.id for hit in both} == expected
    assert store.search("docs", dense=dense[0], filter=SearchFilter(sources=[])) == []


def test_staged_points_are_stored_but_never_searched_until_unstaged(store):
    chunks, dense, sparse = make_corpus(n=40)
    store.ensure_collection("docs", DIM)
    store.upsert("docs", chunks[:20], dense[:20], sparse[:20])
    store.upsert("docs", chunks[20:], dense[20:], sparse[20:], extra=[{"staged": True}] * 20)
    staged = {chunk.id for chunk in chunks[20:]}
    assert store.count("docs") == 40
    queries = [
        {"dense": dense[25]},
        {"sparse": ENCODER.encode_query(chunks[25].text)},
        {"dense": dense[25], "sparse": ENCODER.encode_query(chunks[25].text)},
    ]
    filters = [None, SearchFilter(sources=SOURCES), SearchFilter(tags=["faq", "api"])]
    for query in queries:
        for search_filter in filters:
            hits = store.search("docs", **query, limit=40, filter=search_filter, exact=True)
            assert hits and not {hit.chunk.id for hit in hits} & staged, (query.keys(), search_filter)
    store.set_payload("docs", sorted(staged), {"staged": False})
    (hit,) = store.search("docs", dense=dense[25], limit=1, exact=True)
    assert hit.chunk == chunks[25]


def test_set_payload_changes_only_the_given_fields_of_the_given_points(store):
    chunks, dense, sparse = make_corpus(n=5)
    store.ensure_collection("docs", DIM)
    store.upsert("docs", chunks, dense, sparse, extra=[{"sha": f"h{i}", "version": 1} for i in range(5)])
    store.set_payload("docs", [chunks[0].id, chunks[3].id], {"version": 2})
    payloads = dict(store.scan("docs", ["sha", "version"]))
    assert payloads == {c.id: {"sha": f"h{i}", "version": 2 if i in (0, 3) else 1} for i, c in enumerate(chunks)}
    assert store.search("docs", dense=dense[3], limit=1)[0].chunk == chunks[3]
    with pytest.raises(StoreError, match="overwrite"):
        store.set_payload("docs", [chunks[0].id], {"text": "changed"})
    with pytest.raises(CollectionNotFoundError):
        store.set_payload("nope", [chunks[0].id], {"version": 3})


def test_delete_removes_points_everywhere(store):
    chunks, dense, _ = filled(store, n=30)
    gone = [chunks[0].id, chunks[1].id]
    store.delete("docs", gone)
    assert store.count("docs") == 28
    assert not set(gone) & {point_id for point_id, _ in store.scan("docs", [])}
    assert store.search("docs", dense=dense[0], limit=1)[0].chunk.id not in gone


def test_scan_pages_through_every_point_with_requested_fields(store):
    chunks, _, _ = filled(store, n=600, dim=4)
    scanned = dict(store.scan("docs", ["source", "start"]))
    assert scanned == {c.id: {"source": c.source, "start": c.start} for c in chunks}
    assert all(payload == {} for _, payload in store.scan("docs", []))


def test_missing_collection_names_it_lists_others_and_says_how_to_create_it(store):
    store.ensure_collection("docs", DIM)
    chunks, dense, sparse = make_corpus(n=1)
    calls = [
        lambda: store.search("nope", dense=dense[0]),
        lambda: store.upsert("nope", chunks, dense, sparse),
        lambda: store.count("nope"),
        lambda: list(store.scan("nope", ["text"])),
        lambda: store.delete("nope", [chunks[0].id]),
    ]
    for call in calls:
        with pytest.raises(CollectionNotFoundError) as error:
            call()
        message = str(error.value)
        assert "'nope'" in message and "docs" in message
        assert "scripts/ingest.py DOCS --collection nope" in message


def test_query_with_the_wrong_dimension_is_a_store_error(store):
    store.ensure_collection("docs", DIM)
    with pytest.raises(StoreError, match="8-dimensional ones"):
        store.search("docs", dense=np.ones(8, dtype=np.float32))
    with pytest.raises(ValueError, match="dense query vector, a sparse one, or both"):
        store.search("docs")


def test_drop_collection_is_idempotent(store):
    filled(store, n=5)
    store.drop_collection("docs")
    store.drop_collection("docs")
    assert not store.has_collection("docs")
    with pytest.raises(CollectionNotFoundError):
        store.count("docs")


def test_context_manager_closes_the_store(tmp_path):
    for kind in ("edge", "qdrant"):
        with make_store(kind, tmp_path / kind) as store:
            store.ensure_collection("docs", DIM)
        with pytest.raises(StoreError, match="closed"):
            store.list_collections()


def test_collection_from_the_earlier_bm25_encoder_says_to_index_again(tmp_path):
    """Its BM25 token ids are not those of today's queries: searching it would silently find nothing by BM25."""
    import qdrant_edge as qe
    from qdrant_client import models

    qe.EdgeShard.create(
        str(tmp_path / "store" / "old"),
        qe.EdgeConfig(
            vectors={"dense": qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine)},
            sparse_vectors={"bm25": qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        ),
    ).close()
    client = QdrantClient(":memory:")
    client.create_collection(
        "old",
        vectors_config={"dense": models.VectorParams(size=DIM, distance=models.Distance.COSINE)},
        sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )
    for store in (EdgeStore(tmp_path / "store"), QdrantStore(client=client)):
        with store:
            for call in (lambda: store.ensure_collection("old", DIM), lambda: store.search("old", dense=np.ones(DIM))):
                with pytest.raises(StoreError, match=r"earlier Tessera.*--collection NEW.*delete this one"):
                    call()


# -- the two backends agree ---------------------------------------------------------------------


def test_backends_return_the_same_ranking(tmp_path):
    edge, qdrant = make_store("edge", tmp_path), make_store("qdrant", tmp_path)
    try:
        for store in (edge, qdrant):
            filled(store)
        modes = {
            "dense": lambda d, s: {"dense": d},
            "sparse": lambda d, s: {"sparse": s},
            "hybrid": lambda d, s: {"dense": d, "sparse": s},
        }
        filters = [None, SearchFilter(sources=SOURCES[:3]), SearchFilter(tags=["faq"])]
        for i, (dense, sparse) in enumerate(random_queries(20)):
            for mode, query in modes.items():
                kwargs = dict(query(dense, sparse), limit=10, prefetch_limit=30, filter=filters[i % 3], exact=True)
                edge_hits, qdrant_hits = edge.search("docs", **kwargs), qdrant.search("docs", **kwargs)
                assert [h.chunk.id for h in edge_hits] == [h.chunk.id for h in qdrant_hits], (mode, i)
                assert len(edge_hits) == 10
                assert [h.score for h in edge_hits] == pytest.approx([h.score for h in qdrant_hits], rel=1e-4)
    finally:
        edge.close()
        qdrant.close()


# -- the embedded store on disk -----------------------------------------------------------------


def test_edge_store_persists_across_reopen(tmp_path):
    with EdgeStore(tmp_path / "store") as store:
        chunks, dense, _ = filled(store)
        query = ENCODER.encode_query(chunks[5].text)
        before = store.search("docs", dense=dense[5], sparse=query, exact=True)
    with open_store(path=tmp_path / "store") as store:
        assert store.list_collections() == ["docs"]
        assert store.count("docs") == len(chunks)
        assert dict(store.scan("docs", ["text"])) == {c.id: {"text": c.text} for c in chunks}
        assert store.search("docs", dense=dense[5], sparse=query, exact=True) == before
        store.delete("docs", [chunks[0].id])
    with open_store(path=tmp_path / "store") as store:
        assert store.count("docs") == len(chunks) - 1
        assert chunks[0].id not in dict(store.scan("docs", []))


LOCK_PROBE = textwrap.dedent(
    """
    import sys
    from pipeline.errors import StoreLockedError
    from pipeline.store.factory import open_store
    try:
        open_store(path=sys.argv[1]).close()
    except StoreLockedError as error:
        print(error)
        sys.exit(3)
    """
)


def test_edge_store_folder_is_locked_against_other_processes(tmp_path):
    path = str(tmp_path / "store")
    with open_store(path=path):
        probe = subprocess.run([sys.executable, "-c", LOCK_PROBE, path], capture_output=True, text=True, timeout=60)
        assert probe.returncode == 3, probe.stderr
        assert "is in use by another process; stop it or pass another --store path" in probe.stdout
        with pytest.raises(StoreLockedError):
            open_store(path=path)
    probe = subprocess.run([sys.executable, "-c", LOCK_PROBE, path], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stdout + probe.stderr


def test_edge_store_path_that_is_a_file_is_rejected(tmp_path):
    path = tmp_path / "not-a-folder"
    path.write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        open_store(path=path)


def test_open_store_needs_exactly_one_of_path_and_url(tmp_path):
    with pytest.raises(StoreError, match=r"Only one of \(path, url\)") as error:
        open_store()
    # The knobs a user really has: the scripts' --store flag, and store.url in settings or the environment.
    assert "--store PATH" in str(error.value) and "TESSERA_STORE__URL" in str(error.value)
    assert "--qdrant-url" not in str(error.value)
    with pytest.raises(StoreError, match=r"Only one of \(path, url\)"):
        open_store(path=tmp_path, url="http://localhost:6333")
    with open_store(path=tmp_path / "store") as store:
        assert isinstance(store, EdgeStore)


def test_edge_hnsw_search_recalls_exact_neighbours(tmp_path):
    n, dim = 2000, 384
    vectors = np.random.default_rng(7).standard_normal((n, dim)).astype(np.float32)
    chunks = [Chunk(text=f"point {i}", source="random", heading=(), start=i, end=i + 1) for i in range(n)]
    # Thresholds low enough that 2,000 points get an HNSW graph and searches use it.
    with EdgeStore(tmp_path / "store", indexing_threshold_kb=100, full_scan_threshold_kb=10) as store:
        store.ensure_collection("docs", dim)
        store.upsert("docs", chunks, vectors, [SparseVector()] * n)
    assert list((tmp_path / "store" / "docs").rglob("vector_index-dense/graph.bin")), "close() should build HNSW"
    queries = np.random.default_rng(8).standard_normal((50, dim)).astype(np.float32)
    with EdgeStore(tmp_path / "store") as store:
        recalls = []
        for query in queries:
            exact = {hit.chunk.id for hit in store.search("docs", dense=query, limit=10, exact=True)}
            approx = {hit.chunk.id for hit in store.search("docs", dense=query, limit=10)}
            recalls.append(len(exact & approx) / 10)
    assert np.mean(recalls) >= 0.9


@pytest.mark.parametrize("opener", [lambda url: QdrantStore(url), lambda url: open_store(url=url)])
def test_unreachable_qdrant_is_a_store_error_at_open_naming_the_url_and_what_to_check(opener):
    # Nothing listens on port 1 of this machine: the connection is refused at once, with no network involved.
    with pytest.raises(StoreError) as error:
        opener("http://127.0.0.1:1")
    message = str(error.value)
    assert "http://127.0.0.1:1" in message
    assert "server is running" in message and "host and port" in message and "api key" in message
    assert "TESSERA_STORE__URL" in message


def test_malformed_qdrant_url_is_a_store_error():
    with pytest.raises(StoreError, match="not a Qdrant URL"):
        open_store(url="ftp://qdrant.example")


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
@pytest.mark.parametrize(("status", "expected"), [(401, "check the api key"), (404, "URL of a Qdrant server")])
def test_qdrant_that_refuses_or_is_not_qdrant_is_a_store_error_at_open(status, expected):
    class Answer(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(StoreError, match=expected) as error:
            open_store(url=url, api_key="wrong")
        assert url in str(error.value)
    finally:
        server.shutdown()
        server.server_close()
