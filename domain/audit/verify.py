"""`wealthwise audit verify`: walk every chain and name the first event that is wrong.

Checked per chain, in seq order: seq contiguous from 1, prev_hash links, each hash
recomputed, each checkpoint's signature and that its head hash is the event at its seq;
then that the head row agrees with the last event. Checkpoints and the head row witness
events deleted from the end of a chain, or all of them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.chain import HASH_VERSION, checkpoint_message
from domain.audit.models import GENESIS, AuditCheckpoint
from domain.audit.repository import AuditRepository
from domain.audit.service import hash_of
from domain.audit.signing import AuditSigner


@dataclass(frozen=True)
class Finding:
    workspace_id: uuid.UUID
    seq: int
    event_id: uuid.UUID | None
    reason: str

    def __str__(self) -> str:
        event = self.event_id.hex if self.event_id else "-"
        return f"workspace {self.workspace_id} seq {self.seq} event {event}: {self.reason}"


@dataclass
class VerifyReport:
    events: int = 0
    chains: int = 0
    checkpoints: int = 0
    finding: Finding | None = None

    @property
    def ok(self) -> bool:
        return self.finding is None

    def summary(self) -> str:
        if self.finding is not None:
            return f"FAILED: {self.finding}"
        return f"ok: {self.events} events in {self.chains} chains, {self.checkpoints} checkpoints"


async def verify_chains(
    session: AsyncSession, signer: AuditSigner, workspace_id: uuid.UUID | None = None
) -> VerifyReport:
    report = VerifyReport()
    repository = AuditRepository(session)
    chains = [workspace_id] if workspace_id else await repository.chain_ids()
    for chain in chains:
        report.finding = await _verify_chain(repository, signer, chain, report)
        if report.finding is not None:
            break
    return report


def _checkpoint_problem(
    signer: AuditSigner, checkpoint: AuditCheckpoint, head_hash: str
) -> str | None:
    message = checkpoint_message(
        checkpoint.workspace_id,
        checkpoint.seq,
        checkpoint.head_hash,
        checkpoint.signed_at,
        checkpoint.key_id,
    )
    if not signer.verifies(checkpoint.key_id, message, checkpoint.signature):
        return f"the signature of checkpoint {checkpoint.id.hex} does not verify"
    if checkpoint.head_hash != head_hash:
        return f"checkpoint {checkpoint.id.hex} sealed another hash at this seq"
    return None


async def _verify_chain(
    repository: AuditRepository, signer: AuditSigner, chain: uuid.UUID, report: VerifyReport
) -> Finding | None:
    report.chains += 1
    checkpoints = {c.seq: c for c in await repository.checkpoints(chain)}
    report.checkpoints += len(checkpoints)
    head = await repository.head(chain)
    empty = checkpoints.pop(0, None)
    if empty is not None and (problem := _checkpoint_problem(signer, empty, GENESIS)):
        return Finding(chain, 0, None, problem)
    expected, prev_hash = 1, GENESIS
    beyond_head: uuid.UUID | None = None
    async for event in repository.events(chain):
        if event.seq != expected:
            reason = f"expected seq {expected}, found seq {event.seq}: events are missing"
            return Finding(chain, expected, event.id, reason)
        if event.version != HASH_VERSION or hash_of(event) != event.hash:
            return Finding(chain, event.seq, event.id, "the hash does not match the event")
        if event.prev_hash != prev_hash:
            return Finding(chain, event.seq, event.id, "prev_hash does not link to seq before")
        checkpoint = checkpoints.pop(event.seq, None)
        if checkpoint is not None and (
            problem := _checkpoint_problem(signer, checkpoint, event.hash)
        ):
            return Finding(chain, event.seq, event.id, problem)
        if head is not None and event.seq == head[0] + 1:
            beyond_head = event.id
        prev_hash, expected = event.hash, expected + 1
        report.events += 1
    last = expected - 1
    if checkpoints:
        sealed = min(checkpoints)
        reason = f"a checkpoint seals seq {sealed} but the chain ends at seq {last}"
        return Finding(chain, last + 1, None, reason + ": events are missing")
    return _head_problem(chain, head, last, prev_hash, beyond_head)


def _head_problem(
    chain: uuid.UUID,
    head: tuple[int, str] | None,
    last: int,
    last_hash: str,
    beyond_head: uuid.UUID | None,
) -> Finding | None:
    if head is None:
        return Finding(chain, last, None, "the chain has no head row") if last else None
    seq, hash = head
    if seq > last:
        reason = f"the head row says seq {seq} but the chain ends at seq {last}"
        return Finding(chain, last + 1, None, reason + ": events are missing")
    if seq < last:
        return Finding(chain, seq + 1, beyond_head, f"the event is past the head row (seq {seq})")
    if hash != last_hash:
        return Finding(chain, last, None, "the head row's hash differs from the last event")
    return None
