"""A household to write to, and a subscriber that drops duplicates by seq."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from domain.core.db import bind_scope, unit_of_work
from domain.core.keys import Keyring
from domain.core.tenancy import Tenant
from domain.identity import service as identity
from domain.ledger import accounts
from domain.ledger import transactions as tx
from domain.ledger.repository import LedgerRepository
from domain.realtime import outbox
from domain.realtime.envelope import Envelope, decode

DAY = dt.date(2026, 11, 20)
SECRET_PAYEE = "Zanzibar Spice Emporium"
SECRET_ACCOUNT = "Hidden Treasure Savings"
SECRET_NOTE = "birthday surprise for Mira"


@dataclass
class Household:
    tenant: Tenant
    account_id: uuid.UUID
    other_account_id: uuid.UUID
    category_ids: dict[str, uuid.UUID]


async def household(engine: AsyncEngine, keyring: Keyring) -> Household:
    """A new user's workspace with two INR accounts (two balance.changed events, seq 1-2)."""
    async with unit_of_work(engine) as session:
        user = await identity.register(
            session,
            keyring,
            email=f"rt-{uuid.uuid4().hex}@example.com",
            password="0123456789ab",
            name="Realtime",
        )
        tenant = await identity.open_tenant(session, keyring, user.id, None)
        await bind_scope(session, workspace_id=tenant.workspace_id)
        first = await accounts.create_account(
            session,
            tenant,
            name=SECRET_ACCOUNT,
            kind="savings",
            currency="INR",
            opening_balance="5000",
        )
        second = await accounts.create_account(
            session, tenant, name="Wallet", kind="wallet", currency="INR"
        )
        rows = await LedgerRepository(session, tenant.workspace_id).categories()
    return Household(tenant, first.id, second.id, {row.name: row.id for row in rows})


def spend(home: Household, amount: str = "-1234.56", day: dt.date = DAY) -> tx.TransactionDraft:
    return tx.TransactionDraft(
        account_id=home.account_id,
        date=day,
        amount=Decimal(amount),
        category_id=home.category_ids["Groceries"],
        payee=SECRET_PAYEE,
        notes=SECRET_NOTE,
    )


async def post(engine: AsyncEngine, home: Household, amount: str = "-1234.56") -> uuid.UUID:
    async with unit_of_work(engine) as session:
        await bind_scope(session, workspace_id=home.tenant.workspace_id)
        view = await tx.post(
            session, home.tenant, spend(home, amount), idempotency_key=uuid.uuid4().hex
        )
    return view.id


async def replay(engine: AsyncEngine, workspace_id: uuid.UUID, since: int = 0) -> list[Envelope]:
    async with unit_of_work(engine, write=False) as session:
        await bind_scope(session, workspace_id=workspace_id)
        return await outbox.events_since(session, workspace_id, since)


@dataclass
class DedupingSubscriber:
    """What a client does: keep the last seq seen, drop anything at or below it."""

    received: list[Envelope] = field(default_factory=list)
    seen: list[Envelope] = field(default_factory=list)
    last_seq: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def take(self, message: str) -> None:
        envelope = decode(message)
        self.received.append(envelope)
        if envelope.seq > self.last_seq:
            self.seen.append(envelope)
            self.last_seq = envelope.seq
        self.arrived.set()

    async def until(self, seq: int) -> None:
        """Wait (callers bound it with asyncio.timeout) until `seq` has been seen."""
        while self.last_seq < seq:
            self.arrived.clear()
            await self.arrived.wait()
