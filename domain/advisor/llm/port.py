"""The LLM port: provider-neutral messages, tool specs and stream events.

A provider turns (system, messages, tools) into one model turn, streamed as events:
text deltas and complete tool calls as they arrive, then the turn's `Usage`, then a
`Stop`. `domain.advisor.llm.converse` runs the multi-round tool loop on top of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from domain.core.errors import DomainError

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class TextBlock:
    text: str


@dataclass(frozen=True, slots=True)
class ToolUseBlock:
    """A tool call the assistant made, replayed in later rounds."""

    id: str
    name: str
    input: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolResultBlock:
    """What a tool returned for `tool_use_id` (JSON text), sent back in a user message."""

    tool_use_id: str
    content: str
    is_error: bool = False


ContentBlock = TextBlock | ToolUseBlock | ToolResultBlock


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: tuple[ContentBlock, ...]

    @classmethod
    def user(cls, text: str) -> Message:
        return cls("user", (TextBlock(text),))

    @classmethod
    def assistant(cls, text: str) -> Message:
        return cls("assistant", (TextBlock(text),))


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as the model sees it; `input_schema` is a JSON Schema object."""

    name: str
    description: str
    input_schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call (its input fully streamed and parsed)."""

    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one model request, or of several added together."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_creation_tokens + other.cache_creation_tokens,
        )


@dataclass(frozen=True, slots=True)
class Stop:
    """The end of a model turn (from a provider) or of a whole conversation (from
    `converse`, where `usage` is the sum over every round and `rounds` how many ran).

    Reasons: the provider's ("end_turn", "tool_use", "max_tokens", "refusal", ...) and
    "max_rounds" when `converse` ran out of rounds with the model still calling tools.
    """

    reason: str
    usage: Usage = field(default_factory=Usage)
    rounds: int = 1


@dataclass(frozen=True, slots=True)
class ToolResultEvent:
    """`converse` ran `call`; `result` is what went back to the model."""

    call: ToolCall
    result: Mapping[str, Any]
    is_error: bool = False


LLMEvent = TextDelta | ToolCall | Usage | Stop
ConversationEvent = LLMEvent | ToolResultEvent


class LLMProvider(Protocol):
    name: str

    def stream(
        self, *, system: str, messages: Sequence[Message], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[LLMEvent]:
        """One model turn: TextDelta and ToolCall events, then one Usage, then one Stop.

        ToolCalls are complete and meant to be run: a provider yields them only in a turn
        that stops with reason "tool_use".

        Raises `ProviderError` (or `ProviderTimeout`) when the model cannot be reached.
        """
        ...


class ProviderError(DomainError):
    """The model could not answer (unreachable, overloaded after retries, refused)."""

    code = "ADVISOR_UNAVAILABLE"


class ProviderTimeout(ProviderError):
    code = "ADVISOR_TIMEOUT"
