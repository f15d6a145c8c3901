"""The local model is loaded once per test session (about a second)."""

from __future__ import annotations

import pytest

from domain.advisor.embeddings.minilm import MiniLMEmbedder


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    embedder = MiniLMEmbedder()
    embedder.model()
    return embedder
