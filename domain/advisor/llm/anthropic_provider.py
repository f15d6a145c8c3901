"""Anthropic Claude behind the LLM port, on the official SDK's async streaming client.

The SDK does the wire work: it parses the SSE stream, accumulates `input_json_delta`
fragments into each tool_use block's input, and retries overloaded (529), 5xx, 429 and
timed-out requests with backoff before the stream starts. Here: mapping our messages to
request blocks (system prompt and tool list marked for prompt caching), the SDK's events
to ours, and its errors to `ProviderError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import anthropic
import httpx2
from anthropic.types import CacheControlEphemeralParam, MessageParam, TextBlockParam, ToolParam

from domain.advisor.llm.port import (
    LLMEvent,
    Message,
    ProviderError,
    ProviderTimeout,
    Stop,
    TextBlock,
    TextDelta,
    ToolCall,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    Usage,
)
from domain.core.settings import Settings

CACHED: CacheControlEphemeralParam = {"type": "ephemeral"}


class AnthropicProvider:
    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str = "https://api.anthropic.com",
        max_tokens: int = 2_048,
        timeout_seconds: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            # read: the longest silence allowed between two chunks of the stream
            timeout=anthropic.Timeout(timeout_seconds, connect=min(timeout_seconds, 5.0)),
            max_retries=max_retries,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> AnthropicProvider:
        if settings.anthropic_api_key is None:
            raise ValueError("anthropic_api_key is not set")
        return cls(
            api_key=settings.anthropic_api_key.get_secret_value(),
            model=settings.advisor_model,
            base_url=settings.anthropic_base_url,
            max_tokens=settings.advisor_max_tokens,
            timeout_seconds=settings.advisor_timeout_seconds,
            max_retries=settings.advisor_max_retries,
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def stream(
        self, *, system: str, messages: Sequence[Message], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[LLMEvent]:
        """One model turn: text deltas as they stream; at the end the tool calls (when the
        turn stopped for tool use), the turn's usage and its stop reason."""
        request: dict[str, Any] = {}
        calls: list[ToolCall] = []
        if tools:
            request["tools"] = tool_params(tools)
        try:
            async with self._client.messages.stream(
                model=self.model,
                max_tokens=self.max_tokens,
                system=system_blocks(system),
                messages=message_params(messages),
                **request,
            ) as stream:
                finished = False
                async for event in stream:
                    if event.type == "text":
                        yield TextDelta(event.text)
                    elif event.type == "content_block_stop":
                        block = event.content_block
                        if block.type == "tool_use":
                            calls.append(ToolCall(block.id, block.name, dict(block.input)))
                    elif event.type == "message_stop":
                        finished = True
                if not finished:
                    raise ProviderError("the Anthropic stream ended before message_stop")
                message = await stream.get_final_message()
        except anthropic.APITimeoutError as error:
            raise ProviderTimeout("the Anthropic API did not answer in time") from error
        except httpx2.TimeoutException as error:
            # Raised while reading a stream that stalled after it started.
            raise ProviderTimeout("the Anthropic stream stalled") from error
        except anthropic.APIStatusError as error:
            raise ProviderError(_describe(error)) from error
        except (anthropic.APIConnectionError, httpx2.TransportError) as error:
            raise ProviderError("the Anthropic API could not be reached") from error
        if message.stop_reason == "tool_use":
            # Only then are the calls meant to run: a turn cut off by max_tokens may end
            # inside a tool's input.
            for call in calls:
                yield call
        usage = message.usage
        yield Usage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_input_tokens or 0,
            cache_creation_tokens=usage.cache_creation_input_tokens or 0,
        )
        yield Stop(message.stop_reason or "end_turn")


def system_blocks(system: str) -> list[TextBlockParam]:
    return [{"type": "text", "text": system, "cache_control": CACHED}]


def tool_params(tools: Sequence[ToolSpec]) -> list[ToolParam]:
    """The tool list, with a cache breakpoint on its last entry (tools come first in the
    cached prefix, so the breakpoint covers all of them)."""
    params: list[ToolParam] = [
        {"name": t.name, "description": t.description, "input_schema": dict(t.input_schema)}
        for t in tools
    ]
    params[-1]["cache_control"] = CACHED
    return params


def message_params(messages: Sequence[Message]) -> list[MessageParam]:
    params: list[MessageParam] = []
    for message in messages:
        content: list[Any] = []
        for block in message.content:
            if isinstance(block, TextBlock):
                content.append({"type": "text", "text": block.text})
            elif isinstance(block, ToolUseBlock):
                content.append(
                    {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
                )
            elif isinstance(block, ToolResultBlock):
                result: dict[str, Any] = {
                    "type": "tool_result",
                    "tool_use_id": block.tool_use_id,
                    "content": block.content,
                }
                if block.is_error:
                    result["is_error"] = True
                content.append(result)
        if message.role == "user":
            params.append({"role": "user", "content": content})
        else:
            params.append({"role": "assistant", "content": content})
    return params


def _describe(error: anthropic.APIStatusError) -> str:
    kind = error.type or "error"
    detail = f": {error.api_message}" if error.api_message else ""
    if error.status_code == 200:  # an `event: error` inside an answer that had started
        return f"the Anthropic API failed mid-answer ({kind}){detail}"
    return f"the Anthropic API answered {error.status_code} ({kind}){detail}"
