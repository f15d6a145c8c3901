"""Audit test helpers: read a chain as stored, join a workspace with a role, run the CLI."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from typer.testing import CliRunner, Result

from api.cli import app as cli
from domain.audit.models import AuditEvent
from domain.audit.repository import AuditRepository
from domain.core.crypto import SYSTEM_OWNER
from domain.core.db import bind_scope, unit_of_work
from domain.core.settings import Settings
from schema.context import AppServices
from schema.ids import decode_id
from tests.graphql import Client, register

INVITE = "mutation($e: String!, $r: Role!) { inviteMember(email: $e, role: $r) { token } }"
ACCEPT = "mutation($t: String!) { acceptInvitation(token: $t) { id } }"


async def chain(services: AppServices, workspace_id: uuid.UUID) -> list[AuditEvent]:
    async with unit_of_work(services.engine, write=False) as session:
        await bind_scope(session, workspace_id=workspace_id)
        return [event async for event in AuditRepository(session).events(workspace_id)]


async def system_events(services: AppServices, request_id: str) -> list[AuditEvent]:
    return [e for e in await chain(services, SYSTEM_OWNER) if e.request_id == request_id]


def workspace_of(session: dict[str, Any]) -> uuid.UUID:
    return decode_id(session["workspaces"][0]["id"], "Workspace")


def user_of(session: dict[str, Any]) -> uuid.UUID:
    return decode_id(session["user"]["id"], "User")


async def join(owner: Client, newcomer: Client, workspace: str, role: str) -> dict[str, Any]:
    """Register `newcomer` and make them a `role` of the owner's workspace."""
    joined = await register(newcomer, name=role.title())
    token = (await owner.ok(INVITE, e=joined["email"], r=role))["inviteMember"]["token"]
    await newcomer.ok(ACCEPT, t=token)
    newcomer.use_workspace(workspace)
    return joined


def cli_env(settings: Settings) -> dict[str, str | None]:
    assert settings.kek is not None
    return {
        "WEALTHWISE_ENVIRONMENT": "test",
        "WEALTHWISE_DATA_DIR": str(settings.data_dir),
        "WEALTHWISE_DATABASE_URL": settings.database_url,
        "WEALTHWISE_KEK": settings.kek.get_secret_value(),
        "WEALTHWISE_LOG_LEVEL": "WARNING",
    }


async def run_cli(settings: Settings, *args: str) -> Result:
    """The real `wealthwise` command, in a thread (it runs its own event loop)."""
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, cli, list(args), env=cli_env(settings))
