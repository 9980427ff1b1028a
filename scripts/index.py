"""Direct access to a collection's points by your own ids: upsert records from a JSONL file, get or delete ids.

    scripts/index.py upsert --collection notes notes.jsonl     # one {"id", "text", "metadata"?, "vector"?} per line
    scripts/index.py get --collection notes n1 n2
    scripts/index.py delete --collection notes n1

Records without a vector are embedded with the collection's embedder (the configured one for a new collection).
"""

import argparse
import json
import sys
from pathlib import Path

from pipeline.cli import entry_point
from pipeline.config import load_settings
from pipeline.errors import ConfigError
from pipeline.store.points import PointRecord, delete_points, get_points, upsert_points
from pipeline.store.factory import open_store


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["upsert", "get", "delete"])
    parser.add_argument("items", nargs="+", help="upsert: a JSONL file (- for standard input); get, delete: ids")
    parser.add_argument("--collection", help="collection name (default from tessera.yaml: docs)")
    parser.add_argument("--store", help="embedded store folder (default .tessera/store)")
    parser.add_argument("--config", help="settings file (default ./tessera.yaml when present)")
    parser.add_argument("--embedder", help="upsert into a new collection: the embedder your vectors come from")
    return parser.parse_args()


def read_records(path: str) -> list[PointRecord]:
    try:
        lines = sys.stdin.read().splitlines() if path == "-" else Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror or exc}. Pass a JSONL file of records.") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} line {number} is not JSON ({exc.msg} at column {exc.colno}).") from None
        records.append(PointRecord.from_mapping(data, f"{path} line {number}"))
    return records


@entry_point
def main() -> int:
    args = parse_args()
    overrides = {"collection": args.collection}
    if args.store:
        overrides["store"] = {"path": args.store}
    settings = load_settings(args.config, **overrides)
    records = [record for path in args.items for record in read_records(path)] if args.action == "upsert" else []
    # Not wiring.open_configured_store: importing the wiring (DSPy, the agent) takes seconds this command never needs.
    key = settings.store.api_key.get_secret_value() if settings.store.api_key else None
    with open_store(path=settings.store.path if settings.store.url is None else None, url=settings.store.url,
                    api_key=key) as store:
        if args.action == "upsert":
            embedder = None
            if any(record.vector is None for record in records):
                from pipeline.retrieval.embed import load_embedder

                embedder = load_embedder(settings.embedder, settings.embedder_dtype)
            # Checked against the collection's record only when this run embeds, or creates the collection.
            creates = not store.has_collection(settings.collection)
            name = args.embedder or (settings.embedder if embedder is not None or creates else None)
            written = upsert_points(store, settings.collection, records, embedder=embedder, embedder_name=name)
            print(f"upserted {written} records into {settings.collection!r}")
            return 0
        from pipeline.store.factory import require_collection

        require_collection(store, settings.collection)
        if args.action == "get":
            found = get_points(store, settings.collection, args.items)
            for record_id in args.items:
                print(json.dumps(found.get(record_id, {"id": record_id, "missing": True}), ensure_ascii=False))
            return 0 if len(found) == len(set(args.items)) else 1
        deleted = delete_points(store, settings.collection, args.items)
        missing = sorted(set(args.items) - set(deleted))
        print(f"deleted {len(deleted)} records from {settings.collection!r}"
              + (f"; not found: {', '.join(missing)}" if missing else ""))
    return 0


if __name__ == "__main__":
    main()
