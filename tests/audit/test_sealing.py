"""Chains are sealed periodically by the app's lifespan task, and only when they moved."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from api.app import create_app
from domain.audit.repository import AuditRepository
from domain.audit.service import seal_all
from domain.core.db import bind_scope, unit_of_work
from schema.context import AppServices
from tests.audit.helpers import chain, workspace_of
from tests.graphql import create_account, register


async def test_seal_all_seals_only_chains_that_moved(
    make_client: Any, services: AppServices
) -> None:
    client = make_client()
    workspace = workspace_of(await register(client))
    await create_account(client)
    first = await seal_all(services.engine, services.keyring)
    assert workspace in {c.workspace_id for c in first}
    assert workspace not in {
        c.workspace_id for c in await seal_all(services.engine, services.keyring)
    }
    await create_account(client, name="Second")
    again = {c.workspace_id: c.seq for c in await seal_all(services.engine, services.keyring)}
    assert again[workspace] == 2


async def test_the_lifespan_seals_moved_chains_every_few_minutes(
    make_client: Any, services: AppServices
) -> None:
    client = make_client()
    workspace = workspace_of(await register(client))
    await create_account(client)
    fast = dataclasses.replace(
        services,
        settings=services.settings.model_copy(update={"audit_checkpoint_minutes": 0.002}),
    )
    app = create_app(fast.settings, fast)
    async with app.router.lifespan_context(app):
        for _ in range(100):
            await asyncio.sleep(0.05)
            async with unit_of_work(services.engine, write=False) as session:
                await bind_scope(session, workspace_id=workspace)
                checkpoint = await AuditRepository(session).checkpoint_at(workspace, 1)
            if checkpoint is not None:
                break
    assert checkpoint is not None
    assert checkpoint.head_hash == (await chain(services, workspace))[0].hash
