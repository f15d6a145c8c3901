"""The bounded multi-round tool loop over any `LLMProvider`.

A round is one model turn. When the turn stops for tool use, every tool call is run with
`execute`, and the assistant's tool_use blocks plus a user message of tool_result blocks
(same ids) are appended; the next round sends the grown conversation. The loop ends when
the model stops for any other reason, or after `max_rounds` turns (Stop "max_rounds").
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from domain.advisor.llm.port import (
    ContentBlock,
    ConversationEvent,
    LLMProvider,
    Message,
    ProviderError,
    Stop,
    TextBlock,
    TextDelta,
    ToolCall,
    ToolResultBlock,
    ToolResultEvent,
    ToolSpec,
    ToolUseBlock,
    Usage,
)
from domain.core.errors import DomainError

logger = logging.getLogger(__name__)

ExecuteTool = Callable[[ToolCall], Awaitable[Mapping[str, Any]]]
MAX_ROUNDS = "max_rounds"


async def converse(
    provider: LLMProvider,
    *,
    system: str,
    messages: Sequence[Message],
    tools: Sequence[ToolSpec],
    execute: ExecuteTool,
    max_rounds: int,
) -> AsyncGenerator[ConversationEvent, None]:
    """Yield every TextDelta, ToolCall and per-round Usage, a ToolResultEvent after each
    call has run, and exactly one final Stop carrying the summed usage.

    A tool that raises a `DomainError` is reported to the model as a tool_result with
    is_error and its message; any other exception as a generic failure (logged here).
    Every ToolCall gets its ToolResultEvent, also in the last round allowed.
    """
    if max_rounds < 1:
        raise ValueError("max_rounds must be at least 1")
    conversation = list(messages)
    total = Usage()
    for round_number in range(1, max_rounds + 1):
        text: list[str] = []
        calls: list[ToolCall] = []
        stop: Stop | None = None
        events = provider.stream(system=system, messages=conversation, tools=tools)
        try:
            async for event in events:
                if isinstance(event, Stop):
                    stop = event
                    continue
                if isinstance(event, TextDelta):
                    text.append(event.text)
                elif isinstance(event, ToolCall):
                    calls.append(event)
                elif isinstance(event, Usage):
                    total += event
                yield event
        finally:
            if isinstance(events, AsyncGenerator):  # closed now, not by the GC, if we stop early
                await events.aclose()
        if stop is None:
            raise ProviderError(f"the {provider.name} model's answer ended without a stop")
        if stop.reason != "tool_use" or not calls:
            yield Stop(stop.reason, total, round_number)
            return
        results: list[ContentBlock] = []
        for call in calls:
            result, is_error = await _run(execute, call)
            yield ToolResultEvent(call, result, is_error)
            results.append(ToolResultBlock(call.id, _as_json(result), is_error))
        spoken = "".join(text)
        # the API refuses empty or blank text blocks
        said: list[ContentBlock] = [TextBlock(spoken)] if spoken.strip() else []
        said += [ToolUseBlock(call.id, call.name, call.input) for call in calls]
        conversation += [Message("assistant", tuple(said)), Message("user", tuple(results))]
    yield Stop(MAX_ROUNDS, total, max_rounds)


async def _run(execute: ExecuteTool, call: ToolCall) -> tuple[Mapping[str, Any], bool]:
    try:
        return await execute(call), False
    except DomainError as error:
        return {"error": error.message, "code": error.code}, True
    except Exception:
        logger.exception("advisor tool %s failed", call.name)
        return {"error": f"The tool {call.name} failed; try another approach."}, True


def _as_json(result: Mapping[str, Any]) -> str:
    # default=str: a tool may hand back Decimal, UUID or date values; they travel as text.
    return json.dumps(result, ensure_ascii=False, separators=(",", ":"), default=str)
