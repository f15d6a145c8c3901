"""Shared fixtures: the local model, loaded once per test session (about a second), and
the fake Anthropic Messages API, served once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from domain.advisor.embeddings.minilm import MiniLMEmbedder
from tests.advisor.fake_anthropic import FakeAnthropic
from tests.identity.fake_provider import ServerThread


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    embedder = MiniLMEmbedder()
    embedder.model()
    return embedder


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic()
    thread = ServerThread(server.app())
    server.base_url = thread.start()
    yield server
    thread.stop()
