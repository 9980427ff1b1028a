"""Point a registered model's champion or challenger alias at a version, recording why in the version's description.

    .venv/bin/python scripts/promote.py tessera-rag 3 --alias champion

The version's own evaluation (test objective before and after compiling, with the 95% CI of the gain) and its
comparison with the version that holds the alias now (paired over the same test questions) are read from the
registry and written into the version's description. A version worse than its baseline or than the current holder
is refused unless --force. Serve the result with models:/<name>@<alias>.
"""

import argparse

from pipeline.cli import entry_point


def parse_args(argv=None) -> argparse.Namespace:
    from optimizers.promotion import ALIASES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="registered model name, e.g. tessera-rag")
    parser.add_argument("version", help="the version to promote, e.g. 3")
    parser.add_argument("--alias", required=True, choices=ALIASES, help="the alias to move")
    parser.add_argument("--reason", help="why, in words, added to the version's description")
    parser.add_argument("--force", action="store_true", help="promote even a version the numbers say is worse")
    return parser.parse_args(argv)


@entry_point
def main() -> int:
    args = parse_args()

    import mlflow

    from optimizers.promotion import promote
    from optimizers.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    promotion = promote(args.name, args.version, args.alias, reason=args.reason, force=args.force)
    print(promotion.note)
    print(f"\nmodels:/{promotion.name}@{promotion.alias} is now version {promotion.version}"
          + (f" (was version {promotion.previous})." if promotion.previous else "."))
    return 0


if __name__ == "__main__":
    main()
