"""Index a folder of documents into a collection (a sync: only changed files are re-done)."""

import argparse

from tqdm import tqdm

from pipeline.cli import entry_point
from pipeline.config import load_settings
from pipeline.ingest.sync import IngestReport, check_folder, list_files
from pipeline.wiring import build_ingestor, open_configured_store


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", help="folder holding .md, .txt, .html and .pdf files")
    parser.add_argument("--collection", help="collection name (default from tessera.yaml: docs)")
    parser.add_argument("--store", help="embedded store folder (default .tessera/store)")
    parser.add_argument("--config", help="settings file (default ./tessera.yaml when present)")
    parser.add_argument("--chunking", choices=["structure", "recursive", "tokens", "semantic"], help="chunking strategy")
    return parser.parse_args()


def print_report(report: IngestReport) -> None:
    print(
        f"{report.root}: {len(report.indexed)} indexed, {len(report.unchanged)} unchanged, "
        f"{len(report.deleted)} deleted, {len(report.skipped)} unsupported, {len(report.failed)} failed; "
        f"{report.chunks_written} chunks written, {report.chunks_deleted} removed in {report.seconds:.1f}s"
    )
    if report.skipped:
        print("unsupported (skipped): " + ", ".join(report.skipped))
    for source, reason in report.failed:
        print(f"failed: {source}: {reason}")


@entry_point
def main() -> int:
    args = parse_args()
    overrides = {"collection": args.collection}
    if args.store:
        overrides["store"] = {"path": args.store}
    if args.chunking:
        overrides["chunking"] = {"strategy": args.chunking}
    settings = load_settings(args.config, **overrides)
    total = len(list_files(check_folder(args.folder))[0])
    with open_configured_store(settings) as store:
        ingestor = build_ingestor(settings, store)
        with tqdm(total=total, unit="file", desc=f"ingest → {settings.collection}") as bar:
            counts = {"indexed": 0, "unchanged": 0, "failed": 0, "chunks": 0}

            def progress(source: str, status: str, written: int) -> None:
                if status != "deleted":
                    bar.update(1)
                counts[status] = counts.get(status, 0) + 1
                counts["chunks"] += written
                bar.set_postfix(counts, refresh=False)

            report = ingestor.sync(args.folder, progress=progress)
    print_report(report)
    return 1 if report.failed and not (report.indexed or report.unchanged) else 0


if __name__ == "__main__":
    main()
