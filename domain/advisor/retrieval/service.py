"""Hybrid transaction search: BM25 and dense vectors, fused by reciprocal rank.

`HybridSearch` implements the contract's `TransactionSearch`. One lives per process (the
API's lifespan or the worker); it holds the BM25 indexes in memory and talks to the
vector index (Qdrant Edge embedded, a Qdrant server in production).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from domain.advisor.embeddings.base import Embedder, normalise_text
from domain.advisor.embeddings.cache import CachedEmbedder
from domain.advisor.retrieval.bm25 import BM25_ENGINE, Engine, WorkspaceBM25
from domain.advisor.retrieval.documents import (
    TransactionDocument,
    documents_by_ids,
    workspace_documents,
)
from domain.advisor.retrieval.port import SearchFilter, SearchHit
from domain.advisor.retrieval.retrievers import (
    BM25Retriever,
    DenseRetriever,
    Hits,
    fusion,
    transaction_ids,
)
from domain.advisor.retrieval.source import WorkspaceSource, outbox_head
from domain.advisor.retrieval.vectors import Point, VectorIndex
from domain.core.tenancy import Tenant

Mode = Literal["fused", "bm25", "dense"]
MAX_LIMIT = 100
EMBED_BATCH = 256


@dataclass(frozen=True)
class IndexReport:
    indexed: int
    removed: int


@dataclass
class _Loaded:
    index: WorkspaceBM25
    seq: int


class HybridSearch:
    def __init__(
        self,
        embedder: Embedder,
        vectors: VectorIndex,
        *,
        source: WorkspaceSource | None = None,
        candidates: int = 20,
        engine: Engine = BM25_ENGINE,
    ) -> None:
        self.embedder = embedder
        self.vectors = vectors
        self.source = source
        self.candidates = candidates  # each side's list before fusion
        self.engine = engine
        self._loaded: dict[uuid.UUID, _Loaded] = {}
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}

    async def start(self) -> None:
        """Open (or create) the vector collection; refuses one built by another model."""
        await self.vectors.ensure(self.embedder.model_id, self.embedder.dimension)

    async def close(self) -> None:
        await self.vectors.close()
        if isinstance(self.embedder, CachedEmbedder):
            await self.embedder.aclose()

    # --- the port --------------------------------------------------------------------------

    async def search(
        self,
        workspace_id: uuid.UUID,
        query: str,
        *,
        limit: int = 10,
        start: date | None = None,
        end: date | None = None,
        account_ids: Sequence[uuid.UUID] = (),
        category_ids: Sequence[uuid.UUID] = (),
        mode: Mode = "fused",
    ) -> list[SearchHit]:
        """The workspace's transactions best matching `query`, within the filters."""
        limit = max(1, min(limit, MAX_LIMIT))
        if not query.strip():
            return []
        where = SearchFilter.of(start, end, account_ids, category_ids)
        depth = max(self.candidates, limit)
        if mode == "bm25":
            hits = await self.bm25_hits(workspace_id, query, depth, where)
        elif mode == "dense":
            hits = await self.dense_hits(workspace_id, query, depth, where)
        else:
            index = await self._bm25(workspace_id)
            retrievers = [
                BM25Retriever(lambda text: index.search(text, depth, where)),
                DenseRetriever(lambda text: self.dense_hits(workspace_id, text, depth, where)),
            ]
            hits = transaction_ids(await fusion(list(retrievers), limit).aretrieve(query))
        return [SearchHit(tid, score) for tid, score in hits[:limit]]

    async def bm25_hits(
        self, workspace_id: uuid.UUID, query: str, limit: int, where: SearchFilter
    ) -> Hits:
        return (await self._bm25(workspace_id)).search(query, limit, where)

    async def dense_hits(
        self, workspace_id: uuid.UUID, query: str, limit: int, where: SearchFilter
    ) -> Hits:
        vector = (await self.embedder.embed([query]))[0]
        return await self.vectors.search(workspace_id, vector, limit, where)

    # --- indexing --------------------------------------------------------------------------

    async def index_workspace(self, session: AsyncSession, tenant: Tenant) -> IndexReport:
        """Rebuild one workspace: every transaction embedded (cache permitting) and upserted,
        stale points removed, the BM25 side replaced. Idempotent."""
        workspace_id = tenant.workspace_id
        # The head first: events after it are applied again on the next search (harmless).
        seq = await outbox_head(session, workspace_id)
        documents = [doc async for page in workspace_documents(session, tenant) for doc in page]
        return await self.index_documents(workspace_id, documents, seq)

    async def index_documents(
        self, workspace_id: uuid.UUID, documents: Sequence[TransactionDocument], seq: int = 0
    ) -> IndexReport:
        """Make these the workspace's whole index (documents current to outbox `seq`)."""
        before = await self.vectors.ids(workspace_id)
        await self._upsert_vectors(documents)
        stale = sorted(before - {doc.transaction_id for doc in documents})
        await self.vectors.delete(workspace_id, stale)
        self._replace_bm25(workspace_id, documents, seq)
        return IndexReport(len(documents), len(stale))

    async def update_transactions(
        self, session: AsyncSession, tenant: Tenant, ids: Sequence[uuid.UUID]
    ) -> IndexReport:
        """Bring these transactions up to date: re-read, re-embed (if their text changed)
        and upsert the ones that exist; remove the ones that no longer do."""
        documents = await documents_by_ids(session, tenant, ids)
        present = {doc.transaction_id for doc in documents}
        removed = [i for i in dict.fromkeys(ids) if i not in present]
        await self._upsert_vectors(documents)
        await self.vectors.delete(tenant.workspace_id, removed)
        loaded = self._loaded.get(tenant.workspace_id)
        if loaded is not None:
            loaded.index.upsert(documents)
            loaded.index.remove(removed)
        return IndexReport(len(documents), len(removed))

    async def forget_workspace(self, workspace_id: uuid.UUID) -> None:
        await self.vectors.delete_workspace(workspace_id)
        self._loaded.pop(workspace_id, None)

    async def _upsert_vectors(self, documents: Sequence[TransactionDocument]) -> None:
        for start in range(0, len(documents), EMBED_BATCH):
            batch = documents[start : start + EMBED_BATCH]
            vectors = await self.embedder.embed([embedding_text(doc) for doc in batch])
            points: list[Point] = [
                (doc.transaction_id, vector, doc.payload())
                for doc, vector in zip(batch, vectors, strict=True)
            ]
            await self.vectors.upsert(points)

    # --- the BM25 side ----------------------------------------------------------------------

    def _replace_bm25(
        self, workspace_id: uuid.UUID, documents: Sequence[TransactionDocument], seq: int
    ) -> WorkspaceBM25:
        index = WorkspaceBM25(self.engine)
        index.upsert(documents)
        self._loaded[workspace_id] = _Loaded(index, seq)
        return index

    async def _bm25(self, workspace_id: uuid.UUID) -> WorkspaceBM25:
        """The workspace's BM25 index, loaded on first use and caught up with the outbox."""
        lock = self._locks.setdefault(workspace_id, asyncio.Lock())
        async with lock:
            loaded = self._loaded.get(workspace_id)
            if self.source is None:
                if loaded is None:
                    loaded = self._loaded[workspace_id] = _Loaded(WorkspaceBM25(self.engine), 0)
                return loaded.index
            if loaded is not None:
                changes = await self.source.changes(workspace_id, loaded.seq)
                if changes is not None:
                    loaded.index.upsert(changes.documents)
                    loaded.index.remove(changes.removed)
                    loaded.seq = changes.seq
                    return loaded.index
            documents, seq = await self.source.load(workspace_id)
            return self._replace_bm25(workspace_id, documents, seq)


def embedding_text(document: TransactionDocument) -> str:
    return normalise_text(document.text) or "(no description)"
