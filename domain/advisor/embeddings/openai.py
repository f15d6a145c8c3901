"""OpenAI's embeddings API (`text-embedding-3-small` by default) over httpx."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from domain.advisor.embeddings.base import EmbeddingError, Vector

BATCH = 512  # inputs per request (the API accepts up to 2048)


class OpenAIEmbedder:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        model: str = "text-embedding-3-small",
        dimensions: int = 1536,
    ) -> None:
        self._client = client
        self._model = model
        self._dimensions = dimensions

    @classmethod
    def connect(
        cls,
        *,
        base_url: str,
        api_key: str,
        model: str,
        dimensions: int,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> OpenAIEmbedder:
        client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )
        return cls(client, model=model, dimensions=dimensions)

    @property
    def model_id(self) -> str:
        return f"openai/{self._model}@{self._dimensions}"

    @property
    def dimension(self) -> int:
        return self._dimensions

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        vectors: list[Vector] = []
        for start in range(0, len(texts), BATCH):
            vectors.extend(await self._request(list(texts[start : start + BATCH])))
        return vectors

    async def _request(self, texts: list[str]) -> list[Vector]:
        body: dict[str, Any] = {"model": self._model, "input": texts, "encoding_format": "float"}
        if self._dimensions:
            body["dimensions"] = self._dimensions
        try:
            response = await self._client.post("embeddings", json=body)
        except httpx.HTTPError as exc:
            raise EmbeddingError(f"The embeddings API did not answer: {exc}") from exc
        if response.status_code != 200:
            raise EmbeddingError(
                f"The embeddings API answered {response.status_code}: {_error(response)}"
            )
        return self._vectors(response.json(), len(texts))

    def _vectors(self, payload: Any, expected: int) -> list[Vector]:
        try:
            items = sorted(payload["data"], key=lambda item: item["index"])
            vectors = [[float(x) for x in item["embedding"]] for item in items]
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingError("The embeddings API answered an unexpected body") from exc
        if len(vectors) != expected or any(len(v) != self._dimensions for v in vectors):
            raise EmbeddingError(
                f"The embeddings API returned {len(vectors)} vectors for {expected} texts "
                f"or a dimension other than {self._dimensions}"
            )
        return vectors

    async def aclose(self) -> None:
        await self._client.aclose()


def _error(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except Exception:
        return response.text[:200]
