"""Accounts and their balances (opening balance plus the month totals of their postings)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from domain.core.errors import BadInput, NotFound
from domain.core.money import Money, check_currency
from domain.core.tenancy import Tenant
from domain.ledger import totals
from domain.ledger.models import Account, AccountKind
from domain.ledger.repository import LedgerRepository
from domain.realtime import outbox
from domain.realtime.events import EventType

TABLE = "accounts"


@dataclass(frozen=True)
class AccountView:
    id: uuid.UUID
    kind: AccountKind
    currency: str
    name: str
    number: str | None
    institution: str | None
    opening_balance: Money
    opening_date: dt.date
    archived: bool
    created_at: dt.datetime


def view(tenant: Tenant, account: Account) -> AccountView:
    cipher = tenant.cipher
    return AccountView(
        id=account.id,
        kind=AccountKind(account.kind),
        currency=account.currency,
        name=cipher.open_text(account.name_enc, TABLE, "name", account.id),
        number=cipher.open_optional(account.number_enc, TABLE, "number", account.id),
        institution=cipher.open_optional(account.institution_enc, TABLE, "institution", account.id),
        opening_balance=Money(
            cipher.open_int(account.opening_balance_enc, TABLE, "opening_balance", account.id),
            account.currency,
        ),
        opening_date=account.opening_date,
        archived=account.archived,
        created_at=account.created_at,
    )


def _kind(kind: str) -> AccountKind:
    try:
        return AccountKind(kind.lower())
    except ValueError:
        raise BadInput(f"Unknown account kind {kind!r}", field="kind") from None


def _name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 120:
        raise BadInput("An account name of 1 to 120 characters is required", field="name")
    return name


async def create_account(
    session: AsyncSession,
    tenant: Tenant,
    *,
    name: str,
    kind: str,
    currency: str,
    opening_balance: Decimal | str = "0",
    opening_date: dt.date | None = None,
    number: str | None = None,
    institution: str | None = None,
) -> AccountView:
    tenant.require_write()
    check_currency(currency)
    opening = Money.parse(opening_balance, currency, field="openingBalance")
    account = Account(
        workspace_id=tenant.workspace_id,
        kind=_kind(kind).value,
        currency=currency,
        name_enc=b"",
        opening_balance_enc=b"",
        opening_date=opening_date or dt.date.today(),
    )
    cipher = tenant.cipher
    account.name_enc = cipher.seal_text(_name(name), TABLE, "name", account.id)
    account.opening_balance_enc = cipher.seal_int(
        opening.minor, TABLE, "opening_balance", account.id
    )
    account.number_enc = cipher.seal_optional(number, TABLE, "number", account.id)
    account.institution_enc = cipher.seal_optional(institution, TABLE, "institution", account.id)
    session.add(account)
    await session.flush()
    await _balance_changed(session, tenant, account)
    return view(tenant, account)


async def get_account(session: AsyncSession, tenant: Tenant, account_id: uuid.UUID) -> Account:
    account = await LedgerRepository(session, tenant.workspace_id).account(account_id)
    if account is None:
        raise NotFound("Account not found", field="accountId")
    return account


async def update_account(
    session: AsyncSession,
    tenant: Tenant,
    account_id: uuid.UUID,
    *,
    name: str | None = None,
    number: str | None = None,
    institution: str | None = None,
    archived: bool | None = None,
) -> AccountView:
    """Rename, renumber or (un)archive; archived accounts keep their history."""
    tenant.require_write()
    account = await get_account(session, tenant, account_id)
    cipher = tenant.cipher
    if name is not None:
        account.name_enc = cipher.seal_text(_name(name), TABLE, "name", account.id)
    if number is not None:
        account.number_enc = cipher.seal_optional(number or None, TABLE, "number", account.id)
    if institution is not None:
        account.institution_enc = cipher.seal_optional(
            institution or None, TABLE, "institution", account.id
        )
    changed = archived is not None and archived != account.archived
    if archived is not None:
        account.archived = archived
    await session.flush()
    if changed:
        await _balance_changed(session, tenant, account)
    return view(tenant, account)


async def _balance_changed(session: AsyncSession, tenant: Tenant, account: Account) -> None:
    """A new account's balance, or one that (un)archiving adds or takes out of totals."""
    data = {"accounts": [str(account.id)]}
    await outbox.emit(session, tenant.workspace_id, EventType.BALANCE_CHANGED, data)


async def balances(
    session: AsyncSession,
    tenant: Tenant,
    accounts: list[Account],
    *,
    as_of_month: int | None = None,
) -> dict[uuid.UUID, Money]:
    """Each account's balance at the end of `as_of_month` (default: everything posted)."""
    sums: dict[uuid.UUID, int] = defaultdict(int)
    for total in await totals.read(
        session, tenant, [account.id for account in accounts], month_to=as_of_month
    ):
        sums[total.target_id] += total.amount
    result = {}
    for account in accounts:
        opening = tenant.cipher.open_int(
            account.opening_balance_enc, TABLE, "opening_balance", account.id
        )
        if as_of_month is not None and totals.month_of(account.opening_date) > as_of_month:
            opening = 0
        result[account.id] = Money(opening + sums[account.id], account.currency)
    return result
