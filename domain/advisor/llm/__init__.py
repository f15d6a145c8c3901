"""LLM providers behind one port, and the bounded tool loop that drives them.

The Anthropic adapter lives in `domain.advisor.llm.anthropic_provider`, imported only when
a key is set (the SDK takes about a second to import).
"""

from domain.advisor.llm.converse import MAX_ROUNDS, ExecuteTool, converse
from domain.advisor.llm.factory import build_provider
from domain.advisor.llm.port import (
    ContentBlock,
    ConversationEvent,
    LLMEvent,
    LLMProvider,
    Message,
    ProviderError,
    ProviderTimeout,
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
from domain.advisor.llm.prompt import SENIOR_WEALTH_ADVISOR

__all__ = [
    "MAX_ROUNDS",
    "SENIOR_WEALTH_ADVISOR",
    "ContentBlock",
    "ConversationEvent",
    "ExecuteTool",
    "LLMEvent",
    "LLMProvider",
    "Message",
    "ProviderError",
    "ProviderTimeout",
    "Stop",
    "TextBlock",
    "TextDelta",
    "ToolCall",
    "ToolResultBlock",
    "ToolResultEvent",
    "ToolSpec",
    "ToolUseBlock",
    "Usage",
    "build_provider",
    "converse",
]
