"""What the `wealthwise audit` commands run: each opens its own engine and transactions,
as the table owner (row-level security's maintenance scope)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine

from domain.audit.models import AuditCheckpoint
from domain.audit.service import seal_all
from domain.audit.signing import load_signer, public_pem
from domain.audit.verify import VerifyReport, verify_chains
from domain.core.db import bind_scope, create_engine, unit_of_work
from domain.core.keys import Keyring
from domain.core.settings import Settings


@asynccontextmanager
async def _as_owner(settings: Settings) -> AsyncIterator[tuple[AsyncEngine, Keyring]]:
    """The owner's engine and this process's keyring, with the signing key made once (like
    the other system keys: a no-op after that)."""
    engine = create_engine(settings, owner=True)
    keyring = Keyring.from_settings(settings)
    try:
        async with unit_of_work(engine) as session:
            await bind_scope(session, maintenance=True)
            await keyring.ensure_system_keys(session)
        yield engine, keyring
    finally:
        await engine.dispose()


async def verify(settings: Settings, workspace_id: uuid.UUID | None = None) -> VerifyReport:
    async with (
        _as_owner(settings) as (engine, keyring),
        unit_of_work(engine, write=False) as session,
    ):
        await bind_scope(session, maintenance=True)
        signer = await load_signer(session, keyring)
        return await verify_chains(session, signer, workspace_id)


async def checkpoint(settings: Settings) -> list[AuditCheckpoint]:
    async with _as_owner(settings) as (engine, keyring):
        return await seal_all(engine, keyring)


async def public_key(settings: Settings) -> str:
    async with (
        _as_owner(settings) as (engine, keyring),
        unit_of_work(engine, write=False) as session,
    ):
        await bind_scope(session, maintenance=True)
        return public_pem((await load_signer(session, keyring)).public_key)
