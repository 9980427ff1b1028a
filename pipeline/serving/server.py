"""Starting the HTTP front doors with uvicorn: the parent pins the registered version, checks the model's files once
and starts the workers; each worker loads its own private copy of the model and builds the app.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from pipeline.errors import TesseraError
from pipeline.serving.settings import ServingSettings

logger = logging.getLogger(__name__)

# How the parent hands the workers what to serve (uvicorn starts each worker by importing the app factory).
CONFIG_VARIABLE = "TESSERA_SERVE_WORKER_CONFIG"
FACTORY = "pipeline.serving.server:app_from_environment"
PICKLE_SWITCH = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
GRACEFUL_SHUTDOWN_S = 10
STARTUP_FAILURE = 3  # uvicorn.config.STARTUP_FAILURE


class ServeError(TesseraError):
    """The server could not start: the reason a worker gave is in the message."""


def run_server(uri: str, settings: ServingSettings) -> None:
    """Serve registered model `uri` on `settings.host:settings.port` with `settings.workers` workers until stopped."""
    import uvicorn

    from pipeline.serving.registry import download_verified_model
    from pipeline.serving.served import describe_uri

    info = describe_uri(uri)  # an alias is resolved once, so every worker serves the same version
    state = Path(tempfile.mkdtemp(prefix="tessera-serve-"))
    try:
        verified = download_verified_model(f"models:/{info.name}/{info.version}", state / "verified")
        os.environ[CONFIG_VARIABLE] = json.dumps({
            "uri": uri, "name": info.name, "version": info.version, "alias": info.alias,
            "verified": str(verified), "state": str(state), "settings": settings.model_dump(mode="json"),
        })
        _warn_if_open(settings)
        config = uvicorn.Config(FACTORY, factory=True, host=settings.host, port=settings.port, workers=settings.workers,
                                access_log=False, log_level=os.environ.get("TESSERA_LOG_LEVEL", "warning").lower(),
                                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
        sock = listen(settings.host, settings.port)
        server = uvicorn.Server(config)
        try:
            if settings.workers > 1:
                from uvicorn.supervisors import Multiprocess

                Multiprocess(config, sockets=[sock]).run()
            else:
                server.run(sockets=[sock])
        except SystemExit:
            _raise_worker_failure(state)
            raise
        finally:
            sock.close()
        _raise_worker_failure(state)
    finally:
        os.environ.pop(CONFIG_VARIABLE, None)
        shutil.rmtree(state, ignore_errors=True)


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, made with its protocol named: asyncio turns Nagle off (TCP_NODELAY) only on connections
    whose socket says IPPROTO_TCP, and uvicorn's own multi-worker socket leaves it 0, which costs every keep-alive
    request a delayed ACK, about 40 ms (Kludex/uvicorn#3149)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"Cannot listen on {host}:{port} ({exc.strerror}); pick another --port or stop what uses it.") from None
    sock.set_inheritable(True)
    return sock


def _warn_if_open(settings: ServingSettings) -> None:
    from pipeline.serving.keys import read_keys

    if not read_keys(Path(settings.api_keys_file)) and settings.host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("no API keys in %s: anyone who can reach %s:%d can call the model (add one with "
                       "scripts/serve.py --add-key NAME)", settings.api_keys_file, settings.host, settings.port)


def _raise_worker_failure(state: Path) -> None:
    failures = sorted(state.glob("failed-*.txt"))
    if failures:
        raise ServeError(f"A serving worker could not load the model: {failures[0].read_text(encoding='utf-8')}")


def app_from_environment() -> Any:
    """The app of one worker (uvicorn's factory): a private copy of the verified model, loaded with pickle off."""
    config = json.loads(os.environ[CONFIG_VARIABLE])
    state = Path(config["state"])
    logging.basicConfig(level=os.environ.get("TESSERA_LOG_LEVEL", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    try:
        return _worker_app(config, state)
    except Exception as exc:
        logger.exception("this worker cannot serve %s", config["uri"])
        (state / f"failed-{os.getpid()}.txt").write_text(f"{type(exc).__name__}: {exc}", encoding="utf-8")
        # uvicorn restarts a worker that dies, except one that exits with its start-up failure code: then it stops.
        sys.exit(STARTUP_FAILURE)


def _worker_app(config: dict, state: Path) -> Any:
    import time

    import mlflow

    from pipeline.serving.http import create_app
    from pipeline.serving.keys import RateLimiter
    from pipeline.serving.served import ModelInfo, ServedModel

    settings = ServingSettings(**config["settings"])
    if not settings.tracing:
        mlflow.tracing.disable()
    started = time.perf_counter()
    # Each worker opens its own copy, so no two processes share (or lock) the index snapshot.
    copy = state / f"worker-{os.getpid()}"
    shutil.copytree(config["verified"], copy)
    # The copy was checked against the registered manifest; a pickled model was refused then, and stays refused.
    os.environ[PICKLE_SWITCH] = "false"
    # The model tags each request's trace with the alias it is served under (its files know name and version only).
    loaded = mlflow.pyfunc.load_model(str(copy), model_config={"model_alias": config["alias"], "tracing": settings.tracing})
    info = ModelInfo(uri=config["uri"], name=config["name"], version=config["version"], alias=config["alias"])
    served = ServedModel(loaded, info, time.perf_counter() - started)
    logger.info("worker %d loaded %s version %s in %.1f s", os.getpid(), info.name, info.version, served.load_seconds)
    return create_app(served, settings, limiter=RateLimiter(state / "rate_limits.sqlite"))
