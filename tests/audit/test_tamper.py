"""The log is append-only for the API, and `wealthwise audit verify` catches whatever the
table owner does behind the triggers' back, naming the first bad event."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from domain.audit.chain import checkpoint_message
from domain.audit.models import AuditCheckpoint, AuditEvent
from domain.audit.repository import AuditRepository
from domain.audit.service import hash_of
from domain.audit.signing import load_signer
from domain.core.crypto import SYSTEM_OWNER
from domain.core.db import bind_scope, create_engine, unit_of_work
from domain.core.settings import Settings
from schema.context import AppServices
from tests.audit.helpers import chain, run_cli, workspace_of
from tests.graphql import category_ids, create_account, post, register


@pytest.fixture
def database(fresh_database: Settings) -> Settings:
    """A database of each test's own: these tests break the log on purpose."""
    return fresh_database


async def as_owner(settings: Settings, *statements: str) -> None:
    """Statements as the table owner, around the append-only triggers."""
    if settings.database_url:
        url = settings.database_url.replace("postgresql+asyncpg://", "postgresql://")
        connection = await asyncpg.connect(url)
        try:
            async with connection.transaction():
                await connection.execute("SET LOCAL session_replication_role = replica")
                for statement in statements:
                    await connection.execute(statement)
        finally:
            await connection.close()
        return

    def run() -> None:
        connection = sqlite3.connect(settings.data_dir / "wealthwise.db")
        try:
            for table in ("audit_events", "audit_checkpoints"):
                for operation in ("update", "delete"):
                    connection.execute(f"DROP TRIGGER IF EXISTS {table}_no_{operation}")
            for statement in statements:
                connection.execute(statement)
            connection.commit()
        finally:
            connection.close()

    await asyncio.to_thread(run)


async def a_workspace_with_history(make_client: Any, services: AppServices) -> uuid.UUID:
    """Seq 1 opens an account, seqs 2-4 post to it (the system chain holds the sign-up)."""
    client = make_client()
    workspace = workspace_of(await register(client))
    account = await create_account(client)
    groceries = (await category_ids(client))["Groceries"]
    for n in (1, 2, 3):
        await post(client, account, groceries, f"-{n}.00")
    assert [e.seq for e in await chain(services, workspace)] == [1, 2, 3, 4]
    return workspace


async def test_verify_passes_seals_and_prints_the_public_key(
    make_client: Any, services: AppServices
) -> None:
    workspace = await a_workspace_with_history(make_client, services)
    settings = services.settings
    verified = await run_cli(settings, "audit", "verify")
    assert verified.exit_code == 0, verified.output
    assert verified.output.strip() == "ok: 5 events in 2 chains, 0 checkpoints"

    sealed = await run_cli(settings, "audit", "checkpoint")
    assert sealed.exit_code == 0 and sealed.output.strip().endswith("2 chains sealed")
    again = await run_cli(settings, "audit", "checkpoint")  # nothing moved since
    assert again.output.strip() == "0 chains sealed"
    verified = await run_cli(settings, "audit", "verify", "--workspace", str(workspace))
    assert verified.output.strip() == "ok: 4 events in 1 chains, 1 checkpoints"

    # Offline: the printed key alone checks a checkpoint.
    pem = await run_cli(settings, "audit", "public-key")
    assert pem.output.startswith("-----BEGIN PUBLIC KEY-----")
    public_key = load_pem_public_key(pem.output.encode())
    assert isinstance(public_key, Ed25519PublicKey)
    async with unit_of_work(services.engine, write=False) as session:
        await bind_scope(session, workspace_id=workspace)
        row = await AuditRepository(session).checkpoint_at(workspace, 4)
    assert row is not None
    message = checkpoint_message(workspace, 4, row.head_hash, row.signed_at, row.key_id)
    public_key.verify(row.signature, message)


@pytest.mark.parametrize("table", ["audit_events", "audit_checkpoints"])
async def test_the_api_cannot_update_or_delete_audit_rows(
    make_client: Any, services: AppServices, table: str
) -> None:
    workspace = await a_workspace_with_history(make_client, services)
    assert (await run_cli(services.settings, "audit", "checkpoint")).exit_code == 0
    statements = [f"UPDATE {table} SET seq = seq + 10", f"DELETE FROM {table}"]
    if services.engine.dialect.name == "postgresql":
        statements.append(f"TRUNCATE {table}")
    # The API's role lacks the privilege on PostgreSQL; the owner hits the trigger.
    owner = create_engine(services.settings, owner=True)
    try:
        for engine in (services.engine, owner):
            for statement in statements:
                refusal = "append-only" if engine is owner else "append-only|permission denied"
                with pytest.raises(DBAPIError, match=refusal):
                    async with engine.begin() as connection:
                        await connection.execute(text(statement))
    finally:
        await owner.dispose()
    assert [e.seq for e in await chain(services, workspace)] == [1, 2, 3, 4]


def _tampering(workspace: uuid.UUID) -> dict[str, list[str]]:
    where = f"workspace_id = '{workspace.hex}'"
    return {
        "update": [
            f"UPDATE audit_events SET action = 'mutation.nothing' WHERE {where} AND seq = 2"
        ],
        "delete": [f"DELETE FROM audit_events WHERE {where} AND seq = 2"],
        "reorder": [
            f"UPDATE audit_events SET seq = -1 WHERE {where} AND seq = 2",
            f"UPDATE audit_events SET seq = 2 WHERE {where} AND seq = 3",
            f"UPDATE audit_events SET seq = 3 WHERE {where} AND seq = -1",
        ],
        "truncate": ["DELETE FROM audit_events"],
        "delete the tail": [f"DELETE FROM audit_events WHERE {where} AND seq = 4"],
    }


# (first bad seq, the event named there by its position in the untouched chain, reason)
CAUGHT = {
    "update": (2, 1, "the hash does not match the event"),
    "delete": (2, 2, "expected seq 2, found seq 3: events are missing"),
    "reorder": (2, 2, "the hash does not match the event"),
    "truncate": (
        1,
        None,
        "the head row says seq 4 but the chain ends at seq 0: events are missing",
    ),
    "delete the tail": (
        4,
        None,
        "the head row says seq 4 but the chain ends at seq 3: events are missing",
    ),
}


@pytest.mark.parametrize("tampering", list(CAUGHT))
async def test_verify_names_the_first_event_the_owner_tampered_with(
    make_client: Any, services: AppServices, tampering: str
) -> None:
    workspace = await a_workspace_with_history(make_client, services)
    events = await chain(services, workspace)
    statements = _tampering(workspace)[tampering]
    if tampering == "truncate" and services.engine.dialect.name == "postgresql":
        statements = ["TRUNCATE audit_events"]
    await as_owner(services.settings, *statements)

    result = await run_cli(services.settings, "audit", "verify", "--workspace", str(workspace))
    seq, position, reason = CAUGHT[tampering]
    event = events[position].id.hex if position is not None else "-"
    assert result.exit_code == 1
    assert (
        result.output.strip() == f"FAILED: workspace {workspace} seq {seq} event {event}: {reason}"
    )
    everything = await run_cli(services.settings, "audit", "verify")
    assert everything.exit_code == 1
    first_chain = SYSTEM_OWNER if tampering == "truncate" else workspace  # the system chain first
    assert f"FAILED: workspace {first_chain} seq {seq} " in everything.output


async def test_a_checkpoint_witnesses_a_tail_deleted_with_its_head_row(
    make_client: Any, services: AppServices
) -> None:
    workspace = await a_workspace_with_history(make_client, services)
    events = await chain(services, workspace)
    assert (await run_cli(services.settings, "audit", "checkpoint")).exit_code == 0
    where = f"workspace_id = '{workspace.hex}'"
    await as_owner(
        services.settings,
        f"DELETE FROM audit_events WHERE {where} AND seq = 4",
        f"UPDATE audit_heads SET seq = 3, hash = '{events[2].hash}' WHERE {where}",
    )
    result = await run_cli(services.settings, "audit", "verify", "--workspace", str(workspace))
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"FAILED: workspace {workspace} seq 4 event -: "
        "a checkpoint seals seq 4 but the chain ends at seq 3: events are missing"
    )


async def test_a_forged_checkpoint_signature_is_caught(
    make_client: Any, services: AppServices
) -> None:
    workspace = await a_workspace_with_history(make_client, services)
    events = await chain(services, workspace)
    async with unit_of_work(services.engine) as session:
        await bind_scope(session, workspace_id=workspace)
        key_id = (await load_signer(session, services.keyring)).key_id
        signed_at = datetime.now(UTC)
        forged = Ed25519PrivateKey.generate().sign(
            checkpoint_message(workspace, 3, events[2].hash, signed_at, key_id)
        )
        # INSERT is all the API may do: a checkpoint signed with another key.
        session.add(
            AuditCheckpoint(
                workspace_id=workspace,
                seq=3,
                head_hash=events[2].hash,
                signed_at=signed_at,
                key_id=key_id,
                signature=forged,
            )
        )
    result = await run_cli(services.settings, "audit", "verify")
    assert result.exit_code == 1
    assert f"FAILED: workspace {workspace} seq 3 event {events[2].id.hex}: " in result.output
    assert "does not verify" in result.output


async def test_an_event_appended_around_the_head_row_is_caught(
    make_client: Any, services: AppServices
) -> None:
    """A well-formed event inserted without moving the head row (the API's INSERT right)."""
    workspace = await a_workspace_with_history(make_client, services)
    events = await chain(services, workspace)
    last = events[-1]
    extra = AuditEvent(
        **{**last.model_dump(), "id": uuid.uuid4(), "seq": 5, "prev_hash": last.hash}
    )
    extra.hash = hash_of(extra)
    async with unit_of_work(services.engine) as session:
        await bind_scope(session, workspace_id=workspace)
        session.add(extra)
    result = await run_cli(services.settings, "audit", "verify", "--workspace", str(workspace))
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"FAILED: workspace {workspace} seq 5 event {extra.id.hex}: "
        "the event is past the head row (seq 4)"
    )
