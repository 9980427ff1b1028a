"""Record a reviewer's verdict on a served answer, on its MLflow trace (source HUMAN).

    .venv/bin/python scripts/feedback.py tr-0123... --rating 0 --comment "wrong port" --correct-answer "8443"

--rating 1 means a good answer, 0 a bad one (-1 is read as 0). A corrected answer is recorded as the trace's
expected response; given without --rating it rates the answer 0. The reviewer is --reviewer, else $USER. Trace ids
are shown by scripts/review.py and in the MLflow UI; MLFLOW_TRACKING_URI names the store the server traced to.
"""

import argparse
import getpass

from pipeline.cli import entry_point


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trace_id", help="the served request's trace id (tr-...)")
    parser.add_argument("--rating", help="1: good answer, 0 (or -1): bad answer")
    parser.add_argument("--comment", help="why, in words (the rating's rationale)")
    parser.add_argument("--correct-answer", help="what the answer should have been")
    parser.add_argument("--reviewer", help="who rates (default: $USER)")
    return parser.parse_args()


@entry_point
def main() -> int:
    args = parse_args()

    import mlflow

    from optimizers.feedback import parse_rating, record_feedback
    from optimizers.tracking import tracking_uri
    from pipeline.terminal import printable

    rating = parse_rating(args.rating) if args.rating is not None else None
    mlflow.set_tracking_uri(tracking_uri())
    recorded = record_feedback(args.trace_id, reviewer=args.reviewer or getpass.getuser(), rating=rating,
                               comment=args.comment, correct_answer=args.correct_answer)
    extra = " with a corrected answer" if recorded.correct_answer else ""
    print(f"recorded: {'good (1)' if recorded.rating else 'bad (0)'}{extra} by {printable(recorded.reviewer)} "
          f"on {recorded.trace_id}")
    return 0


if __name__ == "__main__":
    main()
