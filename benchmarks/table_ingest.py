"""Table ingest speed: a Parquet table with precomputed vectors indexed by Tessera against a bare qdrant-edge upsert of
the same vectors, and an incremental Delta sync (a MERGE changing 1% of the rows) against a full index of the table,
with and without Delta's change data feed.

Both sides of each comparison run in this process, one after the other, on fresh store folders. Two bare
sides: one writes only the dense vectors, the other the very points Tessera writes (payload and BM25 vectors, made
beforehand) in one pass; the ratios say how much of the store's own write speed the whole table path (read, check,
hash, BM25 encoding, staged write and switch) keeps.
Neither side builds HNSW (Tessera's store is opened with an indexing threshold no segment reaches). Vectors are
random and texts short: the table path, not an embedder, is measured.

    .venv/bin/python benchmarks/table_ingest.py                   # 100,000 rows, 384 dims
    .venv/bin/python benchmarks/table_ingest.py --rows 20000      # a quick run
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import qdrant_edge as qe
from deltalake import DeltaTable, write_deltalake

from pipeline.cli import entry_point
from pipeline.ingest.chunking import make_chunker
from pipeline.ingest.sync import Ingestor
from pipeline.ingest.table import TableColumns
from pipeline.ingest.table_sync import TableIngestor
from pipeline.store.base import DENSE_VECTOR, SPARSE_VECTOR
from pipeline.store.bm25 import Bm25Encoder
from pipeline.store.edge import EdgeStore

WORDS = ["gateway", "broker", "cache", "keys", "rotate", "restart", "tune", "latency", "quota", "region", "shard"]
COLUMNS = TableColumns(id="id", text="text", vector="embedding", metadata=("product",))
BATCH = 256
NO_HNSW_KB = 1 << 30
CHANGE_FEED = "delta.enableChangeDataFeed"


def make_table(rows: int, dim: int, seed: int, changed: np.ndarray | None = None, base: pa.Table | None = None):
    """`rows` rows of random unit vectors and short texts; with `base`, a copy whose `changed` rows differ."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(rows, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = [f"item {i}: {WORDS[i % 11]} {WORDS[(i * 7) % 11]} {WORDS[(i * 5) % 11]}" for i in range(rows)]
    if base is not None:
        vectors = base.column("embedding").combine_chunks().flatten().to_numpy().reshape(rows, dim).copy()
        texts = base.column("text").to_pylist()
        for i in changed:
            vectors[i] = np.roll(vectors[i], 1)
            texts[i] = texts[i] + " (edited)"
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim)
    return pa.table({"id": np.arange(rows), "text": texts, "embedding": embedding,
                     "product": [WORDS[i % 3] for i in range(rows)]})


def same_points(table: pa.Table, uri: str) -> tuple[list[dict], list[qe.SparseVector]]:
    """The payloads and BM25 vectors Tessera writes for the table's rows (computed outside any timing)."""
    texts, products = table.column("text").to_pylist(), table.column("product").to_pylist()
    payloads = [{"text": text, "source": f"{uri}#{i}", "heading": [], "start": 0, "end": len(text), "tags": [],
                 "root": uri, "file_hash": "0" * 64, "chunk_index": 0, "staged": False, "chunk_count": 1,
                 "metadata": {"product": product}} for i, (text, product) in enumerate(zip(texts, products))]
    sparse = [qe.SparseVector(list(v.indices), list(v.values)) for v in Bm25Encoder().encode_documents(texts)]
    return payloads, sparse


def bare_edge_upsert(folder: Path, table: pa.Table, dim: int, points: tuple[list, list] | None = None) -> float:
    """Seconds for qdrant-edge alone to upsert the table's vectors in batches of BATCH: ids and dense vectors only,
    or with `points` (payloads and sparse vectors) the very points Tessera writes, in one pass."""
    config = qe.EdgeConfig(vectors={DENSE_VECTOR: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
                           sparse_vectors={SPARSE_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)})
    shard = qe.EdgeShard.create(str(folder), config)
    vectors = table.column("embedding").combine_chunks().flatten().to_numpy().reshape(table.num_rows, dim)
    ids = [f"00000000-0000-4000-8000-{i:012d}" for i in range(table.num_rows)]
    started = time.perf_counter()
    for start in range(0, table.num_rows, BATCH):
        rows = range(start, min(start + BATCH, table.num_rows))
        if points is None:
            batch = [qe.Point(ids[i], {DENSE_VECTOR: vectors[i].tolist()}, {}) for i in rows]
        else:
            batch = [qe.Point(ids[i], {DENSE_VECTOR: vectors[i].tolist(), SPARSE_VECTOR: points[1][i]}, points[0][i])
                     for i in rows]
        shard.update(qe.UpdateOperation.upsert_points(batch))
    shard.flush()
    seconds = time.perf_counter() - started
    shard.close()
    return seconds


def tessera_sync(store_folder: Path, table_path: Path) -> tuple[float, object]:
    """Seconds for one TableIngestor sync into the store at `store_folder` (closed afterwards, outside the timing)."""
    # No HNSW build when the store closes (a threshold no segment reaches): the bare side builds none either, and
    # at 100,000 points the build alone takes minutes here.
    store = EdgeStore(store_folder, indexing_threshold_kb=NO_HNSW_KB)
    chunker = make_chunker("recursive", size=512, overlap=0)  # unused: one chunk per row
    ingestor = Ingestor(store, "bench", embedder=None, chunker=chunker, batch_size=BATCH)
    started = time.perf_counter()
    report = TableIngestor(ingestor, embedder_name="random-384").sync(str(table_path), COLUMNS)
    seconds = time.perf_counter() - started
    store.close()
    return seconds, report


@entry_point
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--changed", type=float, default=0.01, help="share of rows the new Delta version changes")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tessera-table-bench-"))
    try:
        print(f"table: {args.rows:,} rows, {args.dim}-d vectors, short texts", flush=True)
        table = make_table(args.rows, args.dim, seed=0)
        parquet = work / "vectors.parquet"
        pq.write_table(table, parquet)

        bare = bare_edge_upsert(work / "bare", table, args.dim)
        print(f"bare qdrant-edge upsert, vectors only:  {args.rows / bare:9,.0f} rows/s ({bare:.1f} s)", flush=True)
        full_points = bare_edge_upsert(work / "bare-payload", table, args.dim, same_points(table, str(parquet)))
        print(f"bare qdrant-edge upsert, same points:   {args.rows / full_points:9,.0f} rows/s ({full_points:.1f} s; "
              "+ payload and BM25 vectors)", flush=True)
        seconds, report = tessera_sync(work / "store-parquet", parquet)
        print(f"Tessera Parquet ingest:                 {args.rows / seconds:9,.0f} rows/s ({seconds:.1f} s, "
              f"{report.chunks_written:,} points)", flush=True)
        print(f"ratio Tessera / bare upsert of the vectors: {bare / seconds:.2f}; of the same points: "
              f"{full_points / seconds:.2f} (1.0 = the store's own write speed)")

        rng = np.random.default_rng(1)
        changed = np.sort(rng.choice(args.rows, size=max(1, int(args.rows * args.changed)), replace=False))
        edits = make_table(args.rows, args.dim, 0, changed, table).take(pa.array(changed))
        for label, configuration in (("diff on id + hash", {}), ("change feed", {CHANGE_FEED: "true"})):
            delta = work / f"delta-{len(configuration)}"
            write_deltalake(str(delta), table, configuration=configuration or None)
            full, _ = tessera_sync(work / f"store-delta-{len(configuration)}", delta)
            # A new version that rewrites 1% of the rows in place, as an upstream job's MERGE would.
            DeltaTable(str(delta)).merge(edits, predicate="t.id = s.id", source_alias="s", target_alias="t") \
                .when_matched_update_all().execute()
            incremental, report = tessera_sync(work / f"store-delta-{len(configuration)}", delta)
            print(f"Delta ({label}): full index {full:.1f} s; sync of a version changing {len(changed):,} rows "
                  f"{incremental:.1f} s ({len(report.indexed):,} rows written); ratio full / incremental "
                  f"{full / incremental:.1f}x", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    main()
