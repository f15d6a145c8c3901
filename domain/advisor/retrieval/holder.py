"""The process's search, opened on first use (light to import: the heavy modules load then)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from domain.core.keys import Keyring
from domain.core.settings import Settings

if TYPE_CHECKING:
    from domain.advisor.retrieval.service import HybridSearch


def preload() -> None:
    """Import what opening the search needs (LlamaIndex, Qdrant, BM25: ~1.7 s here) now,
    at start-up, rather than on the event loop when the first transaction is indexed or the
    first search runs: an import there stalls every request and socket of the process."""
    import domain.advisor.retrieval.runtime  # noqa: F401


class SearchHolder:
    """Opens the process's `HybridSearch` on first use (the model loads only if needed)."""

    def __init__(self) -> None:
        self._search: HybridSearch | None = None
        self._lock = asyncio.Lock()

    async def get(self, settings: Settings, engine: AsyncEngine, keyring: Keyring) -> HybridSearch:
        from domain.advisor.retrieval.runtime import open_search

        async with self._lock:
            if self._search is None:
                self._search = await open_search(settings, engine, keyring)
            return self._search

    async def close(self) -> None:
        async with self._lock:
            if self._search is not None:
                await self._search.close()
                self._search = None
