"""Building the process's `HybridSearch` from the settings."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from qdrant_client import AsyncQdrantClient
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.advisor.embeddings import CachedEmbedder, VectorCacheFile, build_embedder
from domain.advisor.retrieval.service import HybridSearch
from domain.advisor.retrieval.source import LedgerSource
from domain.advisor.retrieval.vectors import EdgeVectorIndex, ServerVectorIndex, VectorIndex
from domain.core.db import unit_of_work
from domain.core.keys import Keyring
from domain.core.settings import Settings


def vector_index(settings: Settings) -> VectorIndex:
    """A Qdrant server when WEALTHWISE_QDRANT_URL is set, else Qdrant Edge in the data dir."""
    if settings.qdrant_url:
        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        client = AsyncQdrantClient(url=settings.qdrant_url, api_key=key)
        return ServerVectorIndex(client, settings.qdrant_collection)
    return EdgeVectorIndex(edge_path(settings))


def edge_path(settings: Settings) -> Path:
    return settings.ensure_data_dir() / "qdrant-edge" / settings.qdrant_collection


async def cache_secret(engine: AsyncEngine, keyring: Keyring) -> bytes:
    """The embedding cache's HMAC key, derived from the blind-index key (never stored)."""
    async with unit_of_work(engine, write=False) as session:
        index_key = await keyring.index_key(session)  # system keys need no scope
    return hmac.new(index_key, b"wealthwise/embedding-cache/v1", hashlib.sha256).digest()


async def open_search(settings: Settings, engine: AsyncEngine, keyring: Keyring) -> HybridSearch:
    """The process's search: cached embedder, vector index (checked against the model) and
    the ledger as the BM25 side's source."""
    store = VectorCacheFile(settings.ensure_data_dir() / "embedding-cache.sqlite3")
    embedder = CachedEmbedder(build_embedder(settings), await cache_secret(engine, keyring), store)
    search = HybridSearch(embedder, vector_index(settings), source=LedgerSource(engine, keyring))
    try:
        await search.start()
    except BaseException:
        await search.close()
        raise
    return search
