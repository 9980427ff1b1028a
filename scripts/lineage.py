"""Print where a registered model comes from: documents → index version → compile run → model version → alias.

    scripts/lineage.py models:/tessera-rag@champion
    scripts/lineage.py --trace TRACE_ID        # a served answer: the chunks it cited, their documents, its model
"""

import argparse

from pipeline.cli import entry_point


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", help="registered model URI: models:/NAME/VERSION or models:/NAME@ALIAS")
    parser.add_argument("--trace", help="a served request's trace id, walked back to the documents it cited")
    args = parser.parse_args()
    if (args.model is None) == (args.trace is None):
        parser.error("pass a model URI or --trace TRACE_ID (one of them)")
    return args


@entry_point
def main() -> int:
    args = parse_args()
    import mlflow

    from optimizers.lineage import model_lineage, trace_lineage
    from optimizers.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    found = trace_lineage(args.trace) if args.trace else model_lineage(args.model)
    for line in found.lines():
        print(line)
    return 0


if __name__ == "__main__":
    main()
