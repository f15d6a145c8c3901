"""Embeddings behind a small port: the local MiniLM (default) or OpenAI's API."""

from __future__ import annotations

from domain.advisor.embeddings.base import Embedder, EmbeddingError, Vector, normalise_text
from domain.advisor.embeddings.cache import CachedEmbedder, VectorCacheFile
from domain.core.settings import Settings

__all__ = [
    "CachedEmbedder",
    "Embedder",
    "EmbeddingError",
    "Vector",
    "VectorCacheFile",
    "build_embedder",
    "normalise_text",
]


def build_embedder(settings: Settings) -> Embedder:
    """The model the settings choose (`WEALTHWISE_EMBEDDINGS`), without a cache."""
    if settings.embeddings == "openai":
        from domain.advisor.embeddings.openai import OpenAIEmbedder

        if settings.openai_api_key is None:
            raise ValueError("WEALTHWISE_EMBEDDINGS=openai needs WEALTHWISE_OPENAI_API_KEY")
        return OpenAIEmbedder.connect(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key.get_secret_value(),
            model=settings.openai_embedding_model,
            dimensions=settings.openai_embedding_dimensions,
            timeout=settings.openai_timeout_seconds,
        )
    from domain.advisor.embeddings.minilm import MiniLMEmbedder

    return MiniLMEmbedder()
