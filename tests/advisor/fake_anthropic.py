"""A fake Anthropic Messages API (POST /v1/messages, streaming), served by uvicorn.

It speaks the documented wire format: `event:` + `data:` lines (compact JSON, a blank line
after each event) in the order message_start, content_block_start / content_block_delta
(text_delta, input_json_delta in fragments) / content_block_stop per block, a ping,
message_delta (stop_reason, usage), message_stop; errors as JSON bodies with the HTTP
status (529 overloaded_error, ...) or as an `event: error` inside a started stream.
Like the real API it refuses a conversation whose tool_use blocks are not answered by
tool_result blocks with the same ids in the next user message (400 invalid_request_error).

A test scripts the replies (`script`) and reads what was sent (`requests`).
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

API_KEY = "sk-ant-test-0123456789"
MODEL = "claude-sonnet-5-5"


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class ToolUse:
    name: str
    input: dict[str, Any]
    id: str = field(default_factory=lambda: f"toolu_{uuid.uuid4().hex[:24]}")


@dataclass(frozen=True)
class Answer:
    """A streamed assistant turn."""

    blocks: tuple[Text | ToolUse, ...]
    stop_reason: str = "end_turn"
    input_tokens: int = 100
    output_tokens: int = 20
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    # Stall this long after the first text delta (a stream that stops moving).
    stall_after_first_delta: float = 0.0
    # Send an `event: error` of this type right after message_start.
    error_event: str | None = None


@dataclass(frozen=True)
class Failure:
    """An HTTP error answer, e.g. 529 overloaded_error."""

    status: int
    error_type: str
    message: str


@dataclass(frozen=True)
class Silence:
    """Say nothing for this long before answering (longer than the client's timeout)."""

    seconds: float
    then: Answer | Failure | None = None


Reply = Answer | Failure | Silence


@dataclass
class Recorded:
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeAnthropic:
    base_url: str = ""
    script: deque[Reply] = field(default_factory=deque)
    # Answers this when the script is empty (e.g. a model that never stops calling tools).
    default: Reply | None = None
    requests: list[Recorded] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self, *replies: Reply, default: Reply | None = None) -> None:
        with self.lock:
            self.script = deque(replies)
            self.default = default
            self.requests.clear()
            self.refusals.clear()

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/messages", self.messages, methods=["POST"])])

    async def messages(self, request: Request) -> Response:
        body = await request.json()
        with self.lock:
            self.requests.append(Recorded(dict(request.headers), body))
            reply = self.script.popleft() if self.script else self.default
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return error(400, "invalid_request_error", "anthropic-version: header is required")
        problem = conversation_problem(body)
        if problem is not None:
            with self.lock:
                self.refusals.append(problem)
            return error(400, "invalid_request_error", problem)
        if reply is None:
            return error(500, "api_error", "the fake has no reply scripted")
        if isinstance(reply, Silence):
            await wait_unless_gone(request, reply.seconds)
            if reply.then is None:
                return error(500, "api_error", "Internal server error")
            reply = reply.then
        if isinstance(reply, Failure):
            return error(reply.status, reply.error_type, reply.message)
        return StreamingResponse(
            stream(reply, body.get("model", MODEL)),
            headers={"request-id": request_id(), "cache-control": "no-cache"},
            media_type="text/event-stream; charset=utf-8",
        )


async def wait_unless_gone(request: Request, seconds: float) -> None:
    """Sleep, but stop early once the client has hung up (no work left for shutdown)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.05)


def request_id() -> str:
    return f"req_{uuid.uuid4().hex[:24]}"


def error(status: int, error_type: str, message: str) -> JSONResponse:
    rid = request_id()
    body = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": rid}
    return JSONResponse(body, status_code=status, headers={"request-id": rid})


def conversation_problem(body: dict[str, Any]) -> str | None:
    """What the real API would refuse in the tool-use protocol, or None."""
    messages = body.get("messages") or []
    uses_tools = False
    for position, message in enumerate(messages):
        content = message["content"]
        blocks = content if isinstance(content, list) else []
        asked = [b["id"] for b in blocks if b.get("type") == "tool_use"]
        uses_tools = uses_tools or bool(asked)
        if message["role"] != "assistant" or not asked:
            continue
        following = messages[position + 1] if position + 1 < len(messages) else None
        answered = [
            b["tool_use_id"]
            for b in (following or {}).get("content", [])
            if isinstance(b, dict) and b.get("type") == "tool_result"
        ]
        if following is None or following["role"] != "user" or sorted(answered) != sorted(asked):
            return (
                f"messages.{position + 1}: `tool_use` ids were found without `tool_result` "
                f"blocks immediately after: {', '.join(sorted(set(asked) - set(answered)))}"
            )
    if uses_tools and not body.get("tools"):
        return "Requests which include `tool_use` or `tool_result` blocks must define tools."
    return None


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


PING = b'event: ping\ndata: {"type": "ping"}\n\n'


def fragments(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


async def stream(answer: Answer, model: str) -> AsyncIterator[bytes]:
    usage: dict[str, Any] = {
        "input_tokens": answer.input_tokens,
        "cache_creation_input_tokens": answer.cache_creation_tokens,
        "cache_read_input_tokens": answer.cache_read_tokens,
        "output_tokens": 1,
        "service_tier": "standard",
    }
    message: dict[str, Any] = {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    yield sse("message_start", {"type": "message_start", "message": message})
    if answer.error_event:
        error = {"type": answer.error_event, "message": "Overloaded"}
        yield sse("error", {"type": "error", "error": error})
        return
    for index, block in enumerate(answer.blocks):
        if isinstance(block, Text):
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": part} for part in fragments(block.text, 7)]
        else:
            start = {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
            # The API opens a tool's input with an empty fragment, then streams the JSON.
            pieces = ["", *fragments(json.dumps(block.input), 5)]
            deltas = [{"type": "input_json_delta", "partial_json": part} for part in pieces]
        yield sse(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": start},
        )
        if index == 0:
            yield PING
        for number, delta in enumerate(deltas):
            yield sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
            if number == 0 and answer.stall_after_first_delta:
                await asyncio.sleep(answer.stall_after_first_delta)
        yield sse("content_block_stop", {"type": "content_block_stop", "index": index})
    final_usage = {
        "input_tokens": answer.input_tokens,
        "cache_creation_input_tokens": answer.cache_creation_tokens,
        "cache_read_input_tokens": answer.cache_read_tokens,
        "output_tokens": answer.output_tokens,
    }
    ending = {"stop_reason": answer.stop_reason, "stop_sequence": None}
    yield sse("message_delta", {"type": "message_delta", "delta": ending, "usage": final_usage})
    yield sse("message_stop", {"type": "message_stop"})
