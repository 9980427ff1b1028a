"""Serve a registered model over HTTP: OpenAI-compatible /v1/chat/completions and /v1/responses (streaming too),
MLflow's /invocations and /health; or manage the API keys and read the usage log.

    scripts/serve.py --model models:/tessera-rag@champion --port 8000 --workers 2
    scripts/serve.py --add-key alice          # prints a new key once; only its hash is stored
"""

import argparse
import os
from pathlib import Path

from pipeline.cli import entry_point
from pipeline.config import load_settings
from pipeline.errors import ConfigError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="registered model URI: models:/<name>/<version> or models:/<name>@<alias>")
    parser.add_argument("--host", help="address to listen on (default from tessera.yaml serving.host: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default serving.port: 8000)")
    parser.add_argument("--workers", type=int, help="worker processes, each with its own copy of the model (default 1)")
    parser.add_argument("--keys-file", help="API keys file (default serving.api_keys_file: .tessera/api_keys.json)")
    parser.add_argument("--rate-limit-rpm", type=int, help="requests per minute per API key (default: no limit)")
    parser.add_argument("--no-tracing", action="store_true", help="do not trace served requests to MLflow")
    parser.add_argument("--config", help="settings file (default ./tessera.yaml when present)")
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument("--add-key", metavar="NAME", help="create an API key named NAME, print it once, and exit")
    keys.add_argument("--revoke-key", metavar="NAME", help="remove API key NAME and exit")
    keys.add_argument("--list-keys", action="store_true", help="list the API key names and exit")
    keys.add_argument("--usage", action="store_true", help="print requests, tokens and cost per key from the usage log")
    parser.add_argument("--rpm", type=int, help="with --add-key: this key's own requests-per-minute limit")
    return parser.parse_args()


def serving_settings(args: argparse.Namespace):
    settings = load_settings(args.config).serving
    overrides = {"host": args.host, "port": args.port, "workers": args.workers, "api_keys_file": args.keys_file,
                 "rate_limit_rpm": args.rate_limit_rpm, "tracing": False if args.no_tracing else None}
    try:
        return settings.model_validate({**settings.model_dump(), **{k: v for k, v in overrides.items() if v is not None}})
    except ValueError as exc:
        raise ConfigError(f"Invalid serving option: {exc}") from None


def manage_keys(args: argparse.Namespace, settings) -> None:
    from pipeline.serving.keys import add_key, read_keys, revoke_key, usage_totals

    path = Path(settings.api_keys_file)
    if args.add_key:
        key = add_key(path, args.add_key, args.rpm)
        print(key)
        print(f"API key {args.add_key!r} added to {path} (only its hash is stored; this is the only time it is shown).")
    elif args.revoke_key:
        revoke_key(path, args.revoke_key)
        print(f"API key {args.revoke_key!r} removed from {path}.")
    elif args.list_keys:
        for key in read_keys(path):
            limit = f"  {key.rate_limit_rpm} rpm" if key.rate_limit_rpm else ""
            print(f"{key.id}  created {key.created}{limit}")
    else:
        if settings.usage_log is None:
            raise ConfigError("serving.usage_log is off, so there is no usage to read; set it to a file path.")
        print(f"{'key':<24}{'requests':>10}{'prompt tok':>12}{'compl. tok':>12}{'cost USD':>12}")
        for key_id, entry in sorted(usage_totals(Path(settings.usage_log)).items()):
            print(f"{key_id:<24}{entry['requests']:>10}{entry['prompt_tokens']:>12}{entry['completion_tokens']:>12}"
                  f"{entry['cost_usd']:>12.4f}")


@entry_point
def main() -> int:
    args = parse_args()
    settings = serving_settings(args)
    if args.add_key or args.revoke_key or args.list_keys or args.usage:
        manage_keys(args, settings)
        return 0
    if not args.model:
        raise ConfigError("Name the model to serve: --model models:/<name>@<alias> (for example models:/tessera-rag@champion).")
    if args.rpm is not None:
        raise ConfigError("--rpm sets one key's limit with --add-key; for every key use --rate-limit-rpm.")
    from optimizers.tracking import tracking_uri
    from pipeline.serving.server import run_server

    # The registry compile.py registers into (and where served requests are traced): the workers inherit it.
    os.environ.setdefault("MLFLOW_TRACKING_URI", tracking_uri())
    print(f"serving {args.model} on http://{settings.host}:{settings.port} with {settings.workers} worker(s); Ctrl-C stops",
          flush=True)
    run_server(args.model, settings)
    return 0


if __name__ == "__main__":
    main()
