"""What every command-line entry point shares: one clear message and a non-zero exit on a user error."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable

from pipeline.errors import GuardrailError, TesseraError
from pipeline.terminal import printable

EXIT_USER_ERROR = 2
EXIT_BLOCKED = 3
EXIT_REGRESSION = 4  # scripts/evaluate.py --fail-on-regression: the candidate is worse than its baseline
EXIT_INTERRUPTED = 130


def offline_defaults() -> None:
    """The bundled models are read from disk; never wait on a model hub that is not there."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=os.environ.get("TESSERA_LOG_LEVEL", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    # MLflow logs its store set-up and trace flushing at INFO on every run; a command line shows warnings only.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # LiteLLM otherwise tries to fetch its price table from GitHub on import; the bundled copy is enough.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def entry_point(main: Callable[[], int | None]) -> Callable[[], None]:
    """Run `main`, turning a TesseraError (or a guardrail's error) into `error: …` on stderr and exit code 2."""

    @functools.wraps(main)
    def run() -> None:
        offline_defaults()
        try:
            code = main()
        except (TesseraError, GuardrailError) as exc:
            # Messages quote file names and user text: escape control characters, keep the message's own lines.
            message = "\n".join(printable(line) for line in str(exc).splitlines())
            print(f"error: {message}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(code or 0)

    return run
