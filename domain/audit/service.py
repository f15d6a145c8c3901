"""The audit trail: append events to a workspace's hash chain, seal chains with signed
checkpoints. Services never commit: the request, the job or the CLI does."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from domain.audit.chain import HASH_VERSION, checkpoint_message, event_hash
from domain.audit.models import ActorKind, AuditCheckpoint, AuditEvent, Outcome
from domain.audit.repository import AuditRepository
from domain.audit.signing import load_signer
from domain.core.crypto import SYSTEM_OWNER
from domain.core.db import bind_scope, unit_of_work
from domain.core.errors import BadInput
from domain.core.keys import Keyring
from domain.core.models import utcnow

TABLE = "audit_events"
MAX_TARGETS = 200
MAX_ACTION = 64


async def record_event(
    session: AsyncSession,
    keyring: Keyring,
    *,
    workspace_id: uuid.UUID,
    action: str,
    outcome: Outcome = Outcome.OK,
    actor_id: uuid.UUID | None = None,
    actor_kind: ActorKind | None = None,
    target_ids: Sequence[str] = (),
    request_id: str | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """Append one event to the chain of `workspace_id` (SYSTEM_OWNER: the system chain).

    Runs in the caller's transaction and holds the chain's head row until it ends, so keep
    that transaction short. The IP is sealed with the chain owner's field cipher; the hash
    covers the ciphertext, so `verify` needs no keys.
    """
    if not action or len(action) > MAX_ACTION:
        raise BadInput(f"An audit action needs 1 to {MAX_ACTION} characters", field="action")
    kind = actor_kind or (ActorKind.USER if actor_id is not None else ActorKind.ANONYMOUS)
    targets = list(dict.fromkeys(str(target) for target in target_ids))[:MAX_TARGETS]
    event_id = uuid.uuid4()
    ip_enc = None
    if ip:
        cipher = await keyring.cipher(session, workspace_id)
        ip_enc = cipher.seal_text(ip, TABLE, "ip", event_id)
    repository = AuditRepository(session)
    seq, prev_hash = await repository.lock_head(workspace_id)
    event = AuditEvent(
        id=event_id,
        workspace_id=workspace_id,
        seq=seq + 1,
        version=HASH_VERSION,
        occurred_at=utcnow(),
        actor_id=actor_id,
        actor_kind=kind.value,
        action=action,
        outcome=Outcome(outcome).value,
        target_ids=targets,
        request_id=request_id[:64] if request_id else None,
        ip_enc=ip_enc,
        prev_hash=prev_hash,
        hash="",
    )
    event.hash = hash_of(event)
    await repository.add_event(event)
    await repository.move_head(workspace_id, event.seq, event.hash)
    return event


def hash_of(event: AuditEvent) -> str:
    return event_hash(
        version=event.version,
        event_id=event.id,
        workspace_id=event.workspace_id,
        seq=event.seq,
        occurred_at=event.occurred_at,
        actor_id=event.actor_id,
        actor_kind=event.actor_kind,
        action=event.action,
        outcome=event.outcome,
        target_ids=list(event.target_ids),
        request_id=event.request_id,
        ip_enc=event.ip_enc,
        prev_hash=event.prev_hash,
    )


async def record_system_event(
    engine: AsyncEngine,
    keyring: Keyring,
    *,
    action: str,
    outcome: Outcome = Outcome.OK,
    actor_id: uuid.UUID | None = None,
    actor_kind: ActorKind | None = None,
    target_ids: Sequence[str] = (),
    request_id: str | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """An event of no workspace (sign-ins, registrations), in a transaction of its own."""
    async with unit_of_work(engine) as session:
        await bind_scope(session, workspace_id=SYSTEM_OWNER)
        return await record_event(
            session,
            keyring,
            workspace_id=SYSTEM_OWNER,
            action=action,
            outcome=outcome,
            actor_id=actor_id,
            actor_kind=actor_kind,
            target_ids=target_ids,
            request_id=request_id,
            ip=ip,
        )


async def seal(session: AsyncSession, keyring: Keyring, workspace_id: uuid.UUID) -> AuditCheckpoint:
    """A signed checkpoint of the chain's head now (the existing one if the head has not
    moved since). Takes the head row lock, so it orders with appends."""
    repository = AuditRepository(session)
    seq, head_hash = await repository.lock_head(workspace_id)
    existing = await repository.checkpoint_at(workspace_id, seq)
    if existing is not None:
        return existing
    signer = await load_signer(session, keyring)
    signed_at = utcnow()
    message = checkpoint_message(workspace_id, seq, head_hash, signed_at, signer.key_id)
    checkpoint = AuditCheckpoint(
        workspace_id=workspace_id,
        seq=seq,
        head_hash=head_hash,
        signed_at=signed_at,
        key_id=signer.key_id,
        signature=signer.sign(message),
    )
    session.add(checkpoint)
    await session.flush()
    return checkpoint


async def seal_all(engine: AsyncEngine, keyring: Keyring) -> list[AuditCheckpoint]:
    """Seal every chain whose head moved since its last checkpoint, one transaction each."""
    async with unit_of_work(engine, write=False) as session:
        await bind_scope(session, maintenance=True)
        moved = await AuditRepository(session).unsealed_chains()
    sealed = []
    for workspace_id in moved:
        async with unit_of_work(engine) as session:
            await bind_scope(session, workspace_id=workspace_id)
            sealed.append(await seal(session, keyring, workspace_id))
    return sealed
