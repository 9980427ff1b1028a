"""The HTTP front doors of one served model (an ASGI app): OpenAI Chat Completions and Responses, MLflow's
`/invocations`, `/health`; with API keys, per-key rate limits, a usage line and an `X-Request-Id` per request.

Every failure is a JSON error saying what was wrong (OpenAI's shape under /v1, MLflow's on /invocations), never a
stack trace: 400 bad JSON or schema, 401 no valid key, 404 unknown model, 413 body too large, 429 over the limit
(with Retry-After), 502 the model or its LM failed, 504 it ran out of time. The model runs in a bounded thread pool.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from pipeline.serving import index_access
from pipeline.serving.keys import ANONYMOUS, KeyRing, RateLimiter, UsageLog, lm_prices, retry_after_header
from pipeline.serving.model_calls import ApiError, EventPump, model_failure
from pipeline.serving.openai_wire import (
    ChatRequest,
    RequestProblem,
    ResponseEvents,
    ResponsesRequest,
    chat_chunk,
    chat_completion,
    chat_final_chunks,
    chat_question,
    parse,
    response_object,
    responses_question,
    sse,
)
from pipeline.serving.served import Answer, Delta, ServedModel
from pipeline.serving.settings import ServingSettings

logger = logging.getLogger(__name__)

_MLFLOW_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "RESOURCE_DOES_NOT_EXIST",
                 405: "BAD_REQUEST", 413: "REQUEST_LIMIT_EXCEEDED", 429: "REQUEST_LIMIT_EXCEEDED",
                 500: "INTERNAL_ERROR", 502: "INTERNAL_ERROR", 504: "DEADLINE_EXCEEDED"}
DRAIN_FACTOR = 16
_OPENAI_TYPES = {401: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 502: "server_error",
                 504: "server_error"}


@dataclass
class Call:
    """One request as the usage log sees it."""

    request_id: str
    route: str
    started: float = field(default_factory=time.perf_counter)
    api_key_id: str = ANONYMOUS
    stream: bool = False
    answer: Answer | None = None
    status: int = 200


@dataclass
class Gateway:
    """What every door shares: the model, its settings, keys, limiter, usage log and worker threads."""

    served: ServedModel
    settings: ServingSettings
    keys: KeyRing
    limiter: RateLimiter
    usage: UsageLog
    executor: ThreadPoolExecutor
    index_size: int | None
    started: float = field(default_factory=time.time)

    def admit(self, request: Request, call: Call) -> None:
        """Check the caller's key and count the request against its limit."""
        rpm = self.settings.rate_limit_rpm
        if self.keys.required:
            header = request.headers.get("authorization", "")
            presented = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("x-api-key")
            key = self.keys.identify(presented)
            if key is None:
                raise ApiError(401, "invalid_api_key", "No valid API key: send 'Authorization: Bearer <key>' with a key "
                               "from `scripts/serve.py --add-key NAME`." if not presented else
                               "The API key is not valid (unknown or revoked).", headers={"WWW-Authenticate": "Bearer"})
            call.api_key_id = key.id
            rpm = key.rate_limit_rpm or rpm
        wait = self.limiter.admit(call.api_key_id, rpm)
        if wait is not None:
            raise ApiError(429, "rate_limit_exceeded", f"Key {call.api_key_id!r} is over its limit of {rpm} requests per "
                           f"minute; retry after {retry_after_header(wait)} s.", headers={"Retry-After": retry_after_header(wait)})

    def check_model(self, requested: str | None) -> None:
        info = self.served.info
        if requested is not None and requested != info.name:
            alias = f", alias {info.alias}" if info.alias else ""
            raise ApiError(404, "model_not_found", f"The model {requested!r} does not exist here; this server serves "
                           f"{info.name!r} (version {info.version}{alias}).", param="model")

    def params(self, call: Call) -> dict[str, str] | None:
        return self.served.params(request_id=call.request_id, api_key_id=call.api_key_id)

    async def run(self, function: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self.executor, function), self.settings.request_timeout_s)
        except TimeoutError:
            raise ApiError(504, "timeout", f"The model did not answer within {self.settings.request_timeout_s:g} s "
                           "(serving.request_timeout_s).") from None
        except Exception as exc:  # noqa: BLE001 - whatever the model raised becomes one HTTP error, never a traceback
            raise ApiError(*model_failure(exc)) from None

    def pump(self, question: str, call: Call) -> EventPump:
        params = self.params(call)
        return EventPump(self.executor, lambda: self.served.stream(question, params), self.settings.request_timeout_s)

    def record(self, call: Call) -> None:
        answer = call.answer
        info = self.served.info
        self.usage.record(
            request_id=call.request_id, api_key_id=call.api_key_id, route=call.route, status=call.status,
            stream=call.stream, model=info.name, version=info.version, blocked=answer.blocked if answer else None,
            latency_ms=round((time.perf_counter() - call.started) * 1000, 2),
            prompt_tokens=answer.prompt_tokens if answer else None,
            completion_tokens=answer.completion_tokens if answer else None,
        )


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


def _error_body(door: str, error: ApiError, request_id: str) -> dict:
    if door == "mlflow":
        return {"error_code": _MLFLOW_CODES.get(error.status, "BAD_REQUEST"), "message": error.message, "request_id": request_id}
    return {"error": {"message": error.message, "type": _OPENAI_TYPES.get(error.status, "invalid_request_error"),
                      "param": error.param, "code": error.code}, "request_id": request_id}


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON; 413 past `limit` bytes (checked while reading, whatever Content-Length says)."""
    too_large = ApiError(413, "request_too_large", f"The body is larger than {limit:,} bytes (serving.max_body_bytes).")
    body, size = bytearray(), 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            body += chunk
        elif size > DRAIN_FACTOR * limit:
            raise too_large
    # An oversized body is read to its end (up to DRAIN_FACTOR times the limit) before the 413 goes out: a server
    # that closes on unread data resets the connection, and the client sees a broken pipe instead of the answer.
    if size > limit:
        raise too_large
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        detail = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise ApiError(400, "invalid_json", f"The body is not valid JSON ({detail}).") from None


def door(route: str, kind: str = "openai", *, keyed: bool = True):
    """Wrap a handler: request id, key and limit checks, errors as JSON, the usage line (streams log at their end)."""

    def wrap(handler: Callable[[Request, Gateway, Call], Awaitable[Response]]):
        async def endpoint(request: Request) -> Response:
            gateway: Gateway = request.app.state.gateway
            call = Call(request_id=new_request_id(), route=route)
            try:
                if keyed:
                    gateway.admit(request, call)
                response = await handler(request, gateway, call)
            except ApiError as exc:
                call.status = exc.status
                response = JSONResponse(_error_body(kind, exc, call.request_id), exc.status, headers=exc.headers)
            except RequestProblem as exc:
                call.status = 400
                error = ApiError(400, "invalid_request", str(exc), param=exc.param)
                response = JSONResponse(_error_body(kind, error, call.request_id), 400)
            except Exception:  # the log keeps the traceback, the caller gets the request id
                logger.exception("request %s failed", call.request_id)
                call.status = 500
                error = ApiError(500, "internal_error", f"The server failed on this request; its log has request {call.request_id}.")
                response = JSONResponse(_error_body(kind, error, call.request_id), 500)
            response.headers["X-Request-Id"] = call.request_id
            if keyed and not isinstance(response, StreamingResponse):
                gateway.record(call)
            return response

        return endpoint

    return wrap


def tessera_fields(gateway: Gateway, call: Call, answer: Answer) -> dict[str, Any]:
    info = gateway.served.info
    return {**answer.extra(), "request_id": call.request_id, "model_version": info.version, "alias": info.alias}


@door("/health", keyed=False)
async def health(request: Request, gateway: Gateway, call: Call) -> Response:
    info = gateway.served.info
    return JSONResponse({
        "status": "ok",
        "model": {"name": info.name, "version": info.version, "alias": info.alias, "uri": info.uri, "lm": info.lm},
        "index_size": gateway.index_size,
        "streaming": gateway.served.streams,
        "uptime_s": round(time.time() - gateway.started, 3),
        "load_s": round(gateway.served.load_seconds, 3),
        "worker_pid": os.getpid(),
        "keys_required": gateway.keys.required,
    })


@door("/ping", "mlflow", keyed=False)
async def ping(request: Request, gateway: Gateway, call: Call) -> Response:
    return Response("\n", media_type="application/json")


def _model_card(gateway: Gateway) -> dict:
    info = gateway.served.info
    return {"id": info.name, "object": "model", "created": int(gateway.served.loaded_at), "owned_by": "tessera",
            "tessera": {"version": info.version, "alias": info.alias}}


@door("/v1/models")
async def list_models(request: Request, gateway: Gateway, call: Call) -> Response:
    return JSONResponse({"object": "list", "data": [_model_card(gateway)]})


@door("/v1/models/{model}")
async def get_model(request: Request, gateway: Gateway, call: Call) -> Response:
    gateway.check_model(request.path_params["model"])
    return JSONResponse(_model_card(gateway))


@door("/v1/chat/completions")
async def chat_completions(request: Request, gateway: Gateway, call: Call) -> Response:
    chat = parse(ChatRequest, await read_json(request, gateway.settings.max_body_bytes), "chat completion")
    gateway.check_model(chat.model)
    question = chat_question(chat)
    created, completion_id = int(time.time()), f"chatcmpl-{call.request_id[4:]}"
    name = gateway.served.info.name
    if not chat.stream:
        params = gateway.params(call)
        call.answer = await gateway.run(lambda: gateway.served.answer(question, params))
        return JSONResponse(chat_completion(completion_id, name, created, call.answer, tessera_fields(gateway, call, call.answer)))
    call.stream = True
    pump = await _started(gateway, question, call)
    include_usage = bool(chat.stream_options and chat.stream_options.include_usage)

    async def chunks() -> AsyncIterator[bytes]:
        yield sse(chat_chunk(completion_id, name, created, {"role": "assistant", "content": ""}))
        streamed = ""
        async for event in _events(gateway, pump, call):
            if isinstance(event, Delta):
                if event.text:
                    streamed += event.text
                    yield sse(chat_chunk(completion_id, name, created, {"content": event.text}))
            elif isinstance(event, Answer):
                for chunk in chat_final_chunks(completion_id, name, created, event, streamed,
                                               tessera_fields(gateway, call, event), include_usage):
                    yield sse(chunk)
                yield sse("[DONE]")
            else:
                yield sse({"error": {"message": event.message, "type": _OPENAI_TYPES.get(event.status, "server_error"),
                                     "param": None, "code": event.code}})

    return _event_stream(chunks())


async def _responses(request: Request, gateway: Gateway, call: Call, body: Any) -> Response:
    asked = parse(ResponsesRequest, body, "Responses")
    gateway.check_model(asked.model)
    question = responses_question(asked)
    created, hex_id = int(time.time()), call.request_id[4:]
    ids = (f"resp_{hex_id}", f"msg_{hex_id}", gateway.served.info.name, created)
    if not asked.stream:
        params = gateway.params(call)
        call.answer = await gateway.run(lambda: gateway.served.answer(question, params))
        return JSONResponse(response_object(*ids, call.answer, tessera_fields(gateway, call, call.answer)))
    call.stream = True
    pump = await _started(gateway, question, call)
    events = ResponseEvents(*ids)

    async def stream() -> AsyncIterator[bytes]:
        for opening in events.opening():
            yield sse(opening, opening["type"])
        streamed = ""
        async for event in _events(gateway, pump, call):
            if isinstance(event, Delta):
                if event.text:
                    streamed += event.text
                    yield sse(events.delta(event.text), "response.output_text.delta")
            elif isinstance(event, Answer):
                for closing in events.closing(event, streamed, tessera_fields(gateway, call, event)):
                    yield sse(closing, closing["type"])
            else:
                yield sse(events.error(event.code, event.message), "error")

    return _event_stream(stream())


@door("/v1/responses")
async def responses(request: Request, gateway: Gateway, call: Call) -> Response:
    return await _responses(request, gateway, call, await read_json(request, gateway.settings.max_body_bytes))


@door("/invocations", "mlflow")
async def invocations(request: Request, gateway: Gateway, call: Call) -> Response:
    """Responses-style `{"input": [...]}`, or MLflow's scoring formats (`dataframe_records`, `inputs`, …)."""
    body = await read_json(request, gateway.settings.max_body_bytes)
    if isinstance(body, dict) and "input" in body:
        return await _responses(request, gateway, call, body)
    from mlflow.pyfunc.scoring_server import infer_and_parse_data

    if not isinstance(body, dict):
        raise RequestProblem('The body must be a JSON object: {"input": [{"role": "user", "content": "..."}]} or '
                             '{"dataframe_records": [{"question": "..."}]}.')
    schema, params = gateway.served.pyfunc.metadata.get_input_schema(), gateway.params(call)

    def predict() -> bytes:
        # Parsing the table and writing the predictions run on the model's thread, off the event loop; a body MLflow
        # cannot read raises its BAD_REQUEST, which is a 400.
        output = gateway.served.predict_frame(infer_and_parse_data(body, schema), params)
        records = output.to_dict(orient="records") if hasattr(output, "to_dict") else list(output)
        return json.dumps({"predictions": records}, default=_jsonable).encode()

    return Response(await gateway.run(predict), media_type="application/json")


def _index_door(route: str, action: Callable[[ServedModel, Any], dict]):
    """A door to the served index (pipeline/serving/index_access.py), behind the same keys and limits."""

    @door(route)
    async def handler(request: Request, gateway: Gateway, call: Call) -> Response:
        body = await read_json(request, gateway.settings.max_body_bytes)
        try:
            return JSONResponse(await asyncio.get_running_loop().run_in_executor(
                gateway.executor, lambda: action(gateway.served, body)))
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001 - a store failure becomes one HTTP error, never a traceback
            raise ApiError(*model_failure(exc)) from None

    return handler


def _jsonable(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else str(value)


async def _started(gateway: Gateway, question: str, call: Call) -> EventPump:
    """Start the model's stream and wait for its first event, so a failure before any text is an HTTP status."""
    pump = gateway.pump(question, call)
    try:
        await pump.peek()
    except ApiError:
        pump.cancel()
        raise
    return pump


async def _events(gateway: Gateway, pump: EventPump, call: Call) -> AsyncIterator[Delta | Answer | ApiError]:
    """The stream's events; a failure after the first one ends it with an ApiError event (its status is sent)."""
    try:
        while True:
            try:
                event = await pump.next()
            except ApiError as exc:
                call.status = exc.status
                yield exc
                return
            if event is None:
                return
            if isinstance(event, Answer):
                call.answer = event
            yield event
    finally:
        pump.cancel()
        gateway.record(call)


def _event_stream(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    kind = "mlflow" if request.url.path.startswith("/invocations") else "openai"
    message = (f"No route {request.method} {request.url.path}. Routes: POST /v1/chat/completions, POST /v1/responses, "
               "POST /invocations, GET /v1/models, GET /health, POST /v1/index/points[/get|/delete].")
    error = ApiError(status, "not_found" if status == 404 else "method_not_allowed", message)
    request_id = new_request_id()
    return JSONResponse(_error_body(kind, error, request_id), status, headers={"X-Request-Id": request_id})


def create_app(served: ServedModel, settings: ServingSettings, *, limiter: RateLimiter | None = None) -> Starlette:
    """The ASGI app serving `served` under `settings`; `limiter` shares rate limits with other workers."""
    prices = lm_prices(served.info.lm, settings.prompt_price_per_1k, settings.completion_price_per_1k)
    gateway = Gateway(
        served=served, settings=settings, keys=KeyRing(settings.api_keys_file),
        limiter=limiter or RateLimiter(None), usage=UsageLog(settings.usage_log, prices),
        executor=ThreadPoolExecutor(settings.concurrency, thread_name_prefix="tessera-model"),
        index_size=served.index_size(),
    )
    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/responses", responses, methods=["POST"]),
        Route("/invocations", invocations, methods=["POST"]),
        Route("/v1/index/points", _index_door("/v1/index/points", index_access.upsert), methods=["POST"]),
        Route("/v1/index/points/get", _index_door("/v1/index/points/get", index_access.get), methods=["POST"]),
        Route("/v1/index/points/delete", _index_door("/v1/index/points/delete", index_access.delete), methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_found})
    app.state.gateway = gateway
    return app
