"""What `wealthwise advisor reindex` runs: rebuild the vector index (and check the BM25
side loads) for one workspace or all, as the table owner."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from domain.advisor.retrieval.runtime import open_search, vector_index
from domain.advisor.retrieval.service import IndexReport
from domain.advisor.retrieval.source import indexing_tenant
from domain.core.db import bind_scope, create_engine, unit_of_work
from domain.core.keys import Keyring
from domain.core.settings import Settings
from domain.identity.models import Workspace


async def reindex(
    settings: Settings,
    workspace_id: uuid.UUID | None = None,
    *,
    recreate: bool = False,
    progress: Callable[[uuid.UUID, IndexReport], None] | None = None,
) -> dict[uuid.UUID, IndexReport]:
    """Index every transaction of the workspace(s); `recreate` first drops the collection
    (needed after changing the embedding model, which the index otherwise refuses)."""
    engine = create_engine(settings, owner=True)
    keyring = Keyring.from_settings(settings)
    try:
        if recreate:
            index = vector_index(settings)
            await index.drop()
            await index.close()
        search = await open_search(settings, engine, keyring)
        try:
            reports: dict[uuid.UUID, IndexReport] = {}
            for workspace in await _workspaces(engine, workspace_id):
                async with unit_of_work(engine, write=False) as session:
                    tenant = await indexing_tenant(session, keyring, workspace)
                    reports[workspace] = await search.index_workspace(session, tenant)
                if progress is not None:
                    progress(workspace, reports[workspace])
            await search.vectors.optimize()  # the HNSW graph now, not during searches
            return reports
        finally:
            await search.close()
    finally:
        await engine.dispose()


async def _workspaces(engine: AsyncEngine, only: uuid.UUID | None) -> list[uuid.UUID]:
    async with unit_of_work(engine, write=False) as session:
        await bind_scope(session, maintenance=True)
        statement = select(col(Workspace.id)).order_by(col(Workspace.created_at))
        if only is not None:
            statement = statement.where(col(Workspace.id) == only)
        return list((await session.execute(statement)).scalars())
