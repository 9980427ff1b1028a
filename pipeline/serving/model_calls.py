"""Calling the served model from the async server: its synchronous event stream run on a worker thread under one
deadline, and whatever the model raised turned into the HTTP status and message a caller sees."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from typing import Any

from pipeline.terminal import printable

logger = logging.getLogger(__name__)

_END = object()
MAX_MESSAGE = 300


class ApiError(Exception):
    """An HTTP error with the message a caller can act on."""

    def __init__(self, status: int, code: str, message: str, *, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param, self.headers = status, code, message, param, headers or {}


def model_failure(exc: BaseException) -> tuple[int, str, str]:
    """(status, code, message) for an exception the model raised: bad input is 400, a timeout 504, the rest 502.

    The served model names its failures by MLflow error code (INVALID_PARAMETER_VALUE, DEADLINE_EXCEEDED,
    TEMPORARILY_UNAVAILABLE for its LM, INTERNAL_ERROR); a model that raises anything else is judged by type."""
    from mlflow.exceptions import MlflowException

    from pipeline.errors import LMError, QueryError

    if isinstance(exc, MlflowException):
        if exc.error_code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST"):
            return 400, "invalid_request", _short(exc.message)
        if exc.error_code == "DEADLINE_EXCEEDED":
            return 504, "timeout", _short(exc.message)
        return 502, "model_error", _short(exc.message)
    if isinstance(exc, QueryError):
        return 400, "invalid_request", _short(str(exc))
    if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__:
        return 504, "timeout", f"The model's LM timed out: {_short(str(exc))}"
    logger.error("the model failed: %s", exc, exc_info=exc)
    what = "The model's LM failed" if isinstance(exc, LMError) else "The model failed while answering"
    return 502, "model_error", f"{what} ({type(exc).__name__}: {_short(str(exc))})"


def _short(text: str) -> str:
    # The message quotes what the model said went wrong, cut short and without control characters.
    line = printable(" ".join(text.split()))
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 1] + "…"


class EventPump:
    """Iterates `make()` on one executor thread, handing its events to the event loop; `next()` waits for the next
    one until the deadline. Cancelling stops the iterator at its next event (a thread cannot be interrupted)."""

    def __init__(self, executor: Executor, make: Callable[[], Iterator[Any]], timeout_s: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.timeout_s = timeout_s
        self.deadline = self.loop.time() + timeout_s
        self.queue: asyncio.Queue = asyncio.Queue()
        self.cancelled = threading.Event()
        self._peeked: list[Any] = []
        executor.submit(self._run, make)

    def _run(self, make: Callable[[], Iterator[Any]]) -> None:
        iterator = None
        try:
            iterator = make()
            for event in iterator:
                self._put(("event", event))
                if self.cancelled.is_set():
                    break
            self._put(("event", _END))
        except BaseException as exc:  # noqa: BLE001 - handed to the loop, which turns it into an HTTP error
            self._put(("error", exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def _put(self, item: tuple[str, Any]) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            self.cancelled.set()

    async def peek(self) -> Any:
        if not self._peeked:
            self._peeked.append(await self._get())
        return self._peeked[0]

    async def next(self) -> Any:
        """The next event, None at the end; ApiError when the model failed or the deadline passed."""
        event = self._peeked.pop() if self._peeked else await self._get()
        return None if event is _END else event

    async def _get(self) -> Any:
        remaining = self.deadline - self.loop.time()
        try:
            if remaining <= 0:
                raise TimeoutError
            kind, value = await asyncio.wait_for(self.queue.get(), remaining)
        except TimeoutError:
            self.cancel()
            raise ApiError(504, "timeout", f"The model did not finish within {self.timeout_s:g} s "
                           "(serving.request_timeout_s).") from None
        if kind == "error":
            self.cancel()
            raise ApiError(*model_failure(value))
        return value

    def cancel(self) -> None:
        self.cancelled.set()
