"""The OpenAI adapter against a local server speaking the embeddings API's JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from domain.advisor.embeddings import EmbeddingError, build_embedder
from domain.advisor.embeddings.openai import OpenAIEmbedder
from domain.core.settings import Settings
from tests.identity.fake_provider import ServerThread

KEY = "sk-test-0123456789"


@dataclass
class FakeOpenAI:
    """POST /v1/embeddings as documented: data[] of {object, index, embedding}, usage."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_with: int | None = None
    wrong_dimension: bool = False

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/embeddings", self.embeddings, methods=["POST"])])

    async def embeddings(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return self._error(401, "Incorrect API key provided", "invalid_request_error")
        body = json.loads(await request.body())
        self.requests.append(body)
        if self.fail_with:
            return self._error(self.fail_with, "Rate limit reached", "rate_limit_exceeded")
        size = int(body.get("dimensions", 1536)) + (1 if self.wrong_dimension else 0)
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(text, size)}
            for i, text in enumerate(body["input"])
        ]
        data.reverse()  # the API does not promise order: the adapter sorts by index
        tokens = sum(len(text.split()) for text in body["input"])
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    @staticmethod
    def _error(status: int, message: str, kind: str) -> Response:
        body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
        return JSONResponse(body, status_code=status)


def _vector(text: str, size: int) -> list[float]:
    return [float((len(text) * (i + 1)) % 7) for i in range(size)]


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeOpenAI, str]]:
    server = FakeOpenAI()
    thread = ServerThread(server.app())
    base = thread.start()
    yield server, f"{base}/v1"
    thread.stop()


@pytest.fixture
def openai(fake: tuple[FakeOpenAI, str]) -> Iterator[FakeOpenAI]:
    server, _ = fake
    server.requests.clear()
    server.fail_with = None
    server.wrong_dimension = False
    yield server


def _settings(base_url: str, key: str = KEY) -> Settings:
    return Settings(
        embeddings="openai",
        openai_api_key=SecretStr(key),
        openai_base_url=base_url,
        openai_embedding_dimensions=8,
    )


async def test_settings_select_the_openai_adapter_and_it_sends_the_documented_request(
    fake: tuple[FakeOpenAI, str], openai: FakeOpenAI
) -> None:
    embedder = build_embedder(_settings(fake[1]))
    assert isinstance(embedder, OpenAIEmbedder)
    assert (embedder.model_id, embedder.dimension) == ("openai/text-embedding-3-small@8", 8)
    vectors = await embedder.embed(["Swiggy", "Ride to airport"])
    assert vectors == [_vector("Swiggy", 8), _vector("Ride to airport", 8)]
    assert openai.requests == [
        {
            "model": "text-embedding-3-small",
            "input": ["Swiggy", "Ride to airport"],
            "encoding_format": "float",
            "dimensions": 8,
        }
    ]
    await embedder.aclose()


async def test_an_api_error_is_an_embedding_error_with_its_message(
    fake: tuple[FakeOpenAI, str], openai: FakeOpenAI
) -> None:
    openai.fail_with = 429
    embedder = build_embedder(_settings(fake[1]))
    assert isinstance(embedder, OpenAIEmbedder)
    with pytest.raises(EmbeddingError, match="429: Rate limit reached"):
        await embedder.embed(["Uber"])
    await embedder.aclose()


async def test_a_wrong_key_is_refused(fake: tuple[FakeOpenAI, str], openai: FakeOpenAI) -> None:
    embedder = build_embedder(_settings(fake[1], key="sk-wrong"))
    assert isinstance(embedder, OpenAIEmbedder)
    with pytest.raises(EmbeddingError, match="401: Incorrect API key"):
        await embedder.embed(["Uber"])
    await embedder.aclose()


async def test_vectors_of_another_dimension_are_refused(
    fake: tuple[FakeOpenAI, str], openai: FakeOpenAI
) -> None:
    openai.wrong_dimension = True
    embedder = build_embedder(_settings(fake[1]))
    assert isinstance(embedder, OpenAIEmbedder)
    with pytest.raises(EmbeddingError, match="dimension other than 8"):
        await embedder.embed(["Uber"])
    await embedder.aclose()


async def test_an_unreachable_api_is_an_embedding_error() -> None:
    from tests.server import free_port

    embedder = build_embedder(_settings(f"http://127.0.0.1:{free_port()}/v1"))
    assert isinstance(embedder, OpenAIEmbedder)
    with pytest.raises(EmbeddingError, match="did not answer"):
        await embedder.embed(["Uber"])
    await embedder.aclose()


def test_openai_without_a_key_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="WEALTHWISE_OPENAI_API_KEY"):
        build_embedder(Settings(embeddings="openai"))
