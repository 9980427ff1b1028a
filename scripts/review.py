"""A review page for served answers, on http://127.0.0.1:PORT/ only: each recent answer with its question and
citations, and thumbs up, thumbs down or a corrected answer, recorded on its MLflow trace as scripts/feedback.py
records them (source HUMAN, reviewer = --reviewer or $USER).

    .venv/bin/python scripts/review.py --port 8765 --reviewer alice

MLFLOW_TRACKING_URI names the store the server traced to (default: mlflow.db in this folder).
"""

import argparse
import getpass

from pipeline.cli import entry_point


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8765, help="loopback port (default 8765)")
    parser.add_argument("--reviewer", help="who reviews (default: $USER)")
    parser.add_argument("--limit", type=int, default=50, help="how many recent answers to list (default 50)")
    parser.add_argument("--experiment", help="only this experiment's traces (default: every experiment)")
    return parser.parse_args()


@entry_point
def main() -> int:
    args = parse_args()

    import mlflow
    import uvicorn

    from optimizers.review_page import create_review_app
    from optimizers.served_traces import experiment_ids_named
    from optimizers.tracking import tracking_uri
    from pipeline.errors import ConfigError

    if not 1 <= args.port <= 65535 or args.limit < 1:
        raise ConfigError("--port takes 1-65535 and --limit a positive whole number.")
    reviewer = args.reviewer or getpass.getuser()
    mlflow.set_tracking_uri(tracking_uri())
    app = create_review_app(reviewer, limit=args.limit, experiment_ids=experiment_ids_named(args.experiment))
    print(f"review page: http://127.0.0.1:{args.port}/  (reviewing as {reviewer}; Ctrl-C stops it)", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    main()
