"""Which model answers: Claude when an Anthropic key is set, else the offline analyst."""

from __future__ import annotations

from domain.advisor.llm.port import LLMProvider
from domain.core.settings import Settings


def anthropic_configured(settings: Settings) -> bool:
    key = settings.anthropic_api_key
    return key is not None and bool(key.get_secret_value())


def build_provider(settings: Settings, *, offline: LLMProvider) -> LLMProvider:
    """The Anthropic provider when `anthropic_api_key` is set, else `offline`.

    The Anthropic provider holds an HTTP client: close it with `aclose()` on shutdown.
    """
    if anthropic_configured(settings):
        from domain.advisor.llm.anthropic_provider import AnthropicProvider

        return AnthropicProvider.from_settings(settings)
    return offline
