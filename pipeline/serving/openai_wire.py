"""OpenAI's wire formats as Tessera serves them: Chat Completions and Responses requests (checked, the question
taken from the last user message) and the JSON bodies and server-sent events that answer them.

A blocked answer is what OpenAI's content filter gives: a 200 whose text is the refusal, with finish_reason
`content_filter` (Chat) or status `incomplete` for reason `content_filter` (Responses), and `tessera.blocked`.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.serving.served import Answer


class RequestProblem(ValueError):
    """A request body that is not what the front door takes; the message says what to change."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class _Loose(BaseModel):
    # OpenAI clients send options Tessera does not use (temperature, user, …): they are accepted and ignored.
    model_config = ConfigDict(extra="allow")


class TextPart(_Loose):
    type: Literal["text", "input_text", "output_text"]
    text: str


class ChatMessage(_Loose):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None


class StreamOptions(_Loose):
    include_usage: bool = False


class ChatRequest(_Loose):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None


class InputMessage(_Loose):
    type: Literal["message"] = "message"
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]


class ResponsesRequest(_Loose):
    model: str | None = None
    input: str | list[InputMessage]
    stream: bool = False


def parse(model: type[BaseModel], body: Any, what: str) -> Any:
    """`body` as `model`, or a RequestProblem naming the first fields that are wrong."""
    if not isinstance(body, dict):
        raise RequestProblem(f"The body must be a JSON object ({what}), not {type(body).__name__}.")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors()
        described = [f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}" for error in errors[:3]]
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        first = ".".join(str(part) for part in errors[0]["loc"]) if errors else None
        raise RequestProblem(f"Not a valid {what} request: {'; '.join(described)}{more}.", param=first) from None


def _text(content: str | list[TextPart] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content)


def last_user_text(messages: list[ChatMessage] | list[InputMessage], field: str) -> str:
    """The question: the text of the last user message (earlier turns are context the RAG program does not use)."""
    for number in range(len(messages) - 1, -1, -1):
        if messages[number].role == "user":
            text = _text(messages[number].content)
            if not text.strip():
                raise RequestProblem(f"{field}[{number}].content is empty: ask a question in the last user message.",
                                     param=f"{field}.{number}.content")
            return text
    raise RequestProblem(f"{field} has no message with role 'user': the last user message is the question.", param=field)


def chat_question(request: ChatRequest) -> str:
    return last_user_text(request.messages, "messages")


def responses_question(request: ResponsesRequest) -> str:
    if isinstance(request.input, str):
        if not request.input.strip():
            raise RequestProblem("input is empty: send the question as text or as a user message.", param="input")
        return request.input
    if not request.input:
        raise RequestProblem("input has no messages: send [{\"role\": \"user\", \"content\": \"...\"}].", param="input")
    return last_user_text(request.input, "input")


def _usage(answer: Answer, prompt: str, completion: str) -> dict[str, int] | None:
    if answer.prompt_tokens is None or answer.completion_tokens is None:
        return None
    return {prompt: answer.prompt_tokens, completion: answer.completion_tokens,
            "total_tokens": answer.prompt_tokens + answer.completion_tokens}


def chat_completion(completion_id: str, model: str, created: int, answer: Answer, tessera: dict[str, Any]) -> dict:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer.text, "refusal": answer.text if answer.blocked else None},
            "finish_reason": "content_filter" if answer.blocked else "stop",
            "logprobs": None,
        }],
        "usage": _usage(answer, "prompt_tokens", "completion_tokens"),
        "tessera": tessera,
    }


def chat_chunk(completion_id: str, model: str, created: int, delta: dict, finish_reason: str | None = None,
               **extra: Any) -> dict:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
    return {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": choices, **extra}


def chat_final_chunks(completion_id: str, model: str, created: int, answer: Answer, streamed: str,
                      tessera: dict[str, Any], include_usage: bool) -> list[dict]:
    """The chunks after the deltas: any text the deltas lacked, the finish reason with the Tessera fields, usage.

    When the final answer does not continue what was streamed (the output guard replaced it), the refusal is
    sent as a last delta; `tessera.answer` always holds the whole final answer.
    """
    chunks = []
    rest = answer.text[len(streamed):] if answer.text.startswith(streamed) else ("\n\n" if streamed else "") + answer.text
    if rest:
        chunks.append(chat_chunk(completion_id, model, created, {"content": rest}))
    final = {**tessera, "answer": answer.text, "replaced": not answer.text.startswith(streamed)}
    chunks.append(chat_chunk(completion_id, model, created, {}, "content_filter" if answer.blocked else "stop",
                             tessera=final))
    if include_usage:
        chunks.append(chat_chunk(completion_id, model, created, None, usage=_usage(answer, "prompt_tokens", "completion_tokens")))
    return chunks


def response_object(response_id: str, message_id: str, model: str, created: int, answer: Answer | None,
                    tessera: dict[str, Any] | None) -> dict:
    """A Responses API response; `answer=None` is the in-progress response the stream starts with."""
    status = "in_progress" if answer is None else ("incomplete" if answer.blocked else "completed")
    output = [] if answer is None else [_message(message_id, answer.text, "completed")]
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "incomplete_details": {"reason": "content_filter"} if answer is not None and answer.blocked else None,
        "model": model,
        "output": output,
        "parallel_tool_calls": False,
        "tool_choice": "none",
        "tools": [],
        "usage": None if answer is None else _usage(answer, "input_tokens", "output_tokens"),
        "tessera": tessera,
    }


def _message(message_id: str, text: str, status: str) -> dict:
    content = [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" else []
    return {"type": "message", "id": message_id, "status": status, "role": "assistant", "content": content}


class ResponseEvents:
    """The server-sent events of one streamed Responses answer, numbered in order."""

    def __init__(self, response_id: str, message_id: str, model: str, created: int) -> None:
        self.ids = (response_id, message_id, model, created)
        self.message_id = message_id
        self.number = 0

    def _event(self, kind: str, **fields: Any) -> dict:
        event = {"type": kind, "sequence_number": self.number, **fields}
        self.number += 1
        return event

    def opening(self) -> list[dict]:
        started = response_object(*self.ids, None, None)
        part = {"type": "output_text", "text": "", "annotations": []}
        where = {"item_id": self.message_id, "output_index": 0, "content_index": 0}
        return [
            self._event("response.created", response=started),
            self._event("response.in_progress", response=started),
            self._event("response.output_item.added", output_index=0, item=_message(self.message_id, "", "in_progress")),
            self._event("response.content_part.added", part=part, **where),
        ]

    def delta(self, text: str) -> dict:
        return self._event("response.output_text.delta", item_id=self.message_id, output_index=0, content_index=0,
                           delta=text, logprobs=[])

    def closing(self, answer: Answer, streamed: str, tessera: dict[str, Any]) -> list[dict]:
        events = []
        if not answer.text.startswith(streamed) or len(answer.text) > len(streamed):
            rest = answer.text[len(streamed):] if answer.text.startswith(streamed) else ("\n\n" if streamed else "") + answer.text
            events.append(self.delta(rest))
        where = {"item_id": self.message_id, "output_index": 0, "content_index": 0}
        finished = response_object(*self.ids, answer, {**tessera, "replaced": not answer.text.startswith(streamed)})
        events += [
            self._event("response.output_text.done", text=answer.text, logprobs=[], **where),
            self._event("response.content_part.done", part={"type": "output_text", "text": answer.text, "annotations": []}, **where),
            self._event("response.output_item.done", output_index=0, item=finished["output"][0]),
            self._event("response.incomplete" if answer.blocked else "response.completed", response=finished),
        ]
        return events

    def error(self, code: str, message: str) -> dict:
        return self._event("error", code=code, message=message, param=None)


def sse(data: dict | str, event: str | None = None) -> bytes:
    """One server-sent event; Responses events also name their type in the `event:` line, as OpenAI's do."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()
