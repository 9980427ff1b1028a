"""Index a folder of documents into a collection (a sync: only changed files are re-done), or prune gone folders.

With --table, index a Parquet file or a Delta table instead: one document per row (cited as TABLE#ID), its text
embedded, or its own vectors (--vector, with --embedder naming the model that made them) stored as they are.
"""

import argparse

from tqdm import tqdm

from pipeline.cli import entry_point
from pipeline.config import load_settings
from pipeline.ingest.report import IngestProgress, IngestReport
from pipeline.ingest.table import TableColumns
from pipeline.ingest.table_sync import TableIngestor
from pipeline.terminal import printable
from pipeline.wiring import build_ingestor, open_configured_store


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", nargs="?", help="folder holding .md, .txt, .html and .pdf files")
    parser.add_argument("--table", help="a .parquet file or a Delta table's folder to index, one document per row")
    parser.add_argument("--id", default="id", help="--table: the column holding each row's id (default id)")
    parser.add_argument("--text", default="text", help="--table: the column holding each row's text (default text)")
    parser.add_argument("--vector", help="--table: a column of vectors you computed, stored as they are")
    parser.add_argument("--metadata", default="", help="--table: comma-separated columns to store for --where filters")
    parser.add_argument("--embedder", help="--table --vector: the embedder that computed the vectors (queries use it)")
    parser.add_argument("--chunk", action="store_true", help="--table: split long texts with the chunker")
    parser.add_argument("--collection", help="collection name (default from tessera.yaml: docs)")
    parser.add_argument("--store", help="embedded store folder (default .tessera/store)")
    parser.add_argument("--config", help="settings file (default ./tessera.yaml when present)")
    parser.add_argument("--chunking", choices=["structure", "recursive", "tokens", "semantic"], help="chunking strategy")
    parser.add_argument(
        "--follow-links",
        action="store_true",
        help="also read what links in the folder point to outside it (default: ingest.follow_links, off)",
    )
    parser.add_argument(
        "--prune", action="store_true", help="remove the chunks of every folder that no longer exists (after the sync)"
    )
    args = parser.parse_args()
    if args.folder is None and args.table is None and not args.prune:
        parser.error("pass the folder to ingest, --table TABLE, or --prune to remove the chunks of folders that no "
                     "longer exist")
    if args.folder is not None and args.table is not None:
        parser.error("pass a folder or --table, not both")
    return args


class ProgressBar:
    """A byte-counting tqdm bar that moves within a file too, with the file and its chunk count beside it."""

    def __init__(self, collection: str) -> None:
        self.bar = tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, desc=f"ingest → {collection}")

    def __call__(self, event: IngestProgress) -> None:
        self.bar.total = event.bytes_total
        self.bar.update(event.bytes_done - self.bar.n)
        self.bar.set_postfix_str(
            f"{event.files_done}/{event.files_total} files, {printable(event.source)} {event.status}: {event.chunks} chunks",
            refresh=False,
        )

    def close(self) -> None:
        self.bar.close()


def ingest_table(ingestor, args: argparse.Namespace) -> IngestReport:
    columns = TableColumns(id=args.id, text=args.text, vector=args.vector,
                           metadata=tuple(name.strip() for name in args.metadata.split(",") if name.strip()))
    bar = tqdm(total=0, unit="row", desc=f"ingest → {ingestor.collection}")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        tables = TableIngestor(ingestor, chunk=args.chunk, embedder_name=args.embedder)
        report = tables.sync(args.table, columns, progress)
    finally:
        bar.close()
    print(f"{printable(report.root)}: {len(report.indexed)} rows indexed, {len(report.unchanged)} unchanged, "
          f"{len(report.deleted)} deleted; {report.chunks_written} chunks written, {report.chunks_deleted} removed "
          f"in {report.seconds:.1f}s (manifest {report.manifest_id})")
    return report


@entry_point
def main() -> int:
    args = parse_args()
    overrides = {"collection": args.collection}
    if args.store:
        overrides["store"] = {"path": args.store}
    if args.chunking:
        overrides["chunking"] = {"strategy": args.chunking}
    if args.follow_links:
        overrides["ingest"] = {"follow_links": True}
    settings = load_settings(args.config, **overrides)
    report = None
    with open_configured_store(settings) as store:
        ingestor = build_ingestor(settings, store)
        if args.table is not None:
            report = ingest_table(ingestor, args)
        if args.folder is not None:
            bar = ProgressBar(settings.collection)
            try:
                report = ingestor.sync(args.folder, progress=bar)
            finally:
                bar.close()
            for line in report.lines():
                print(line)
        if args.prune:
            pruned = ingestor.prune()
            for root, count in pruned.items():
                print(f"pruned {printable(root)}: {count} chunks removed (the folder no longer exists)")
            if not pruned:
                print("pruned nothing: every indexed folder still exists")
    if report is not None and report.failed and not (report.indexed or report.unchanged or report.moved):
        return 1
    return 0


if __name__ == "__main__":
    main()
