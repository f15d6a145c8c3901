"""The bulk path (`post_many`) records exactly what one `post` per draft records."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from domain import demo
from domain.core.db import bind_scope, create_engine, unit_of_work
from domain.core.errors import BadInput
from domain.core.keys import Keyring
from domain.core.settings import Settings
from domain.core.tenancy import Tenant
from domain.identity import service as identity
from domain.ledger import accounts, reports
from domain.ledger import transactions as tx
from domain.ledger.repository import LedgerRepository

ANCHOR = dt.date(2026, 3, 14)


async def _household(session: AsyncSession, keyring: Keyring) -> tuple[Tenant, list[demo.Draft]]:
    user = await identity.register(
        session,
        keyring,
        email=f"bulk-{uuid.uuid4().hex}@example.com",
        password="0123456789ab",
        name="Bulk",
    )
    tenant = await identity.open_tenant(session, keyring, user.id, None)
    _accounts, drafts, _rates = await demo.prepare_ledger(session, tenant, ANCHOR)
    return tenant, list(drafts[:400])


async def _state(session: AsyncSession, tenant: Tenant) -> tuple[object, ...]:
    # One transaction acts for one workspace at a time (PostgreSQL row-level security).
    await bind_scope(session, workspace_id=tenant.workspace_id)
    repository = LedgerRepository(session, tenant.workspace_id)
    balances = await accounts.balances(session, tenant, await repository.accounts())
    period = reports.Period(dt.date(2023, 1, 1), ANCHOR)
    summary = await reports.spending_summary(session, tenant, period, reports.GroupBy.PAYEE)
    flow = await reports.cashflow(session, tenant, period)
    names = {a.id: accounts.view(tenant, a).name for a in await repository.accounts()}
    return (
        sorted((names[k], v.minor, v.currency) for k, v in balances.items()),
        [(r.label, r.amount.minor, r.postings) for r in summary.rows],
        [(m.month, m.income.minor, m.expenses.minor) for m in flow.months],
        len(await repository.tags()),
    )


async def test_post_many_matches_one_post_per_draft(database: Settings) -> None:
    engine = create_engine(database)
    keyring = Keyring.from_settings(database)
    async with unit_of_work(engine) as session:
        bulk_tenant, drafts = await _household(session, keyring)
        assert await tx.post_many(session, bulk_tenant, drafts) == len(drafts)
        single_tenant, same = await _household(session, keyring)
        for number, draft in enumerate(same):
            await tx.post(session, single_tenant, draft, idempotency_key=f"k{number}")
        assert any(isinstance(d, tx.TransferDraft) for d in drafts)
        assert await _state(session, bulk_tenant) == await _state(session, single_tenant)
    await engine.dispose()


async def test_post_many_refuses_what_post_refuses(database: Settings) -> None:
    engine = create_engine(database)
    keyring = Keyring.from_settings(database)
    async with unit_of_work(engine) as session:
        tenant, drafts = await _household(session, keyring)
        spend = next(d for d in drafts if isinstance(d, tx.TransactionDraft) and d.category_id)
        account, category = spend.account_id, spend.category_id
        wrong_currency = tx.JournalDraft(
            date=ANCHOR,
            postings=(
                tx.PostingDraft(amount=Decimal("-1"), currency="USD", account_id=account),
                tx.PostingDraft(amount=Decimal("1"), currency="USD", category_id=category),
            ),
        )
        with pytest.raises(BadInput, match="holds INR"):
            await tx.post_many(session, tenant, [wrong_currency])
        await accounts.update_account(session, tenant, account, archived=True)
        with pytest.raises(BadInput, match="archived"):
            await tx.post_many(session, tenant, [spend])
    await engine.dispose()
