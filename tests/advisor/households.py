"""A demo household posted through the ledger service, and an independent oracle: figures
summed straight from the drafts that were posted (not from the database or our reports)."""

from __future__ import annotations

import calendar
import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from domain import demo
from domain.advisor.tools import ToolContext, TransactionSearch
from domain.core.db import bind_scope, create_engine, unit_of_work
from domain.core.keys import Keyring
from domain.core.settings import Settings
from domain.core.tenancy import Tenant
from domain.identity import service as identity
from domain.ledger import transactions as tx_service
from domain.ledger.transactions import TransactionDraft, TransferDraft, post_many

ANCHOR = dt.date(2026, 3, 14)  # "today" of the tests: last month is February 2026
CURRENCY_OF = {spec.key: spec.currency for spec in demo.ACCOUNTS}
INCOME = ("Salary", "Interest", "Dividends", "Other income")


@dataclass
class Household:
    engine: AsyncEngine
    tenant: Tenant
    accounts: dict[str, uuid.UUID]
    categories: dict[str, uuid.UUID]
    drafts: list[demo.Draft]
    rates: list[tuple[dt.date, Decimal]]
    email: str = ""

    def currency(self, account_id: uuid.UUID) -> str:
        key = next(k for k, v in self.accounts.items() if v == account_id)
        return CURRENCY_OF[key]

    @asynccontextmanager
    async def context(
        self, today: dt.date = ANCHOR, search: TransactionSearch | None = None
    ) -> AsyncIterator[ToolContext]:
        async with unit_of_work(self.engine) as session:
            await bind_scope(session, workspace_id=self.tenant.workspace_id)
            yield ToolContext(session=session, tenant=self.tenant, today=today, search=search)


PASSWORD = "0123456789ab"


async def demo_household(
    settings: Settings, name: str = "Advisor", anchor: dt.date = ANCHOR
) -> Household:
    """The 36 demo months ending at ANCHOR, in a workspace of a new user (not the fixed demo
    user, so each test module gets its own household in the shared database)."""
    engine = create_engine(settings)
    keyring = Keyring.from_settings(settings)
    async with unit_of_work(engine) as session:
        await keyring.ensure_system_keys(session)
    email = f"{name.lower()}-{uuid.uuid4().hex[:12]}@example.com"
    async with unit_of_work(engine) as session:
        user = await identity.register(session, keyring, email=email, password=PASSWORD, name=name)
        tenant = await identity.open_tenant(session, keyring, user.id, None)
        await bind_scope(session, workspace_id=tenant.workspace_id)
        accounts, drafts, _count = await demo.prepare_ledger(session, tenant, anchor)
        categories = await demo._category_ids(session, tenant.workspace_id)
        await post_many(session, tenant, drafts)
    _drafts, rates = demo._plan(anchor, accounts, categories)
    return Household(engine, tenant, accounts, categories, drafts, list(rates), email)


# --- the oracle -----------------------------------------------------------------------------


def month_end(day: dt.date) -> dt.date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def usd_rate(household: Household, on: dt.date) -> Decimal:
    """The latest USD->INR rate on or before a day (the demo's only pair)."""
    return max((d, r) for d, r in household.rates if d <= on)[1]


def cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Leg:
    """A category leg of a posted draft: the amount on the category (spend is positive)."""

    date: dt.date
    category_id: uuid.UUID
    currency: str
    amount: Decimal
    payee: str | None
    account_id: uuid.UUID


def category_legs(household: Household) -> list[Leg]:
    legs = []
    for draft in household.drafts:
        if isinstance(draft, TransferDraft):
            continue  # own accounts only (and the exchange category): neither spend nor income
        assert isinstance(draft, TransactionDraft)
        currency = household.currency(draft.account_id)
        parts = (
            [(draft.category_id, draft.amount)]
            if draft.category_id is not None
            else [(split.category_id, split.amount) for split in draft.splits]
        )
        for category_id, amount in parts:
            assert category_id is not None and amount is not None
            legs.append(
                Leg(draft.date, category_id, currency, -amount, draft.payee, draft.account_id)
            )
    return legs


def in_base(household: Household, legs: Iterable[Leg]) -> Decimal:
    """INR total: legs summed per (category, month, currency), each sum converted at the rate
    in force at its month's end, rounded to paise."""
    cells: dict[tuple[uuid.UUID, int, int, str], Decimal] = defaultdict(Decimal)
    for leg in legs:
        cells[(leg.category_id, leg.date.year, leg.date.month, leg.currency)] += leg.amount
    total = Decimal(0)
    for (_category, year, month, currency), amount in cells.items():
        if currency == "INR":
            total += amount
        else:
            total += cents(amount * usd_rate(household, month_end(dt.date(year, month, 1))))
    return total


def between(legs: Iterable[Leg], start: dt.date, end: dt.date) -> list[Leg]:
    return [leg for leg in legs if start <= leg.date <= end]


async def listed_ids(
    household: Household, category_names: Sequence[str], start: dt.date, end: dt.date
) -> set[uuid.UUID]:
    """The ids the transaction list (another query path than the tools') gives for these
    categories and dates."""
    async with household.context() as ctx:
        page = await tx_service.list_transactions(
            ctx.session,
            ctx.tenant,
            tx_service.TransactionFilter(
                category_ids=tuple(household.categories[n] for n in category_names),
                date_from=start,
                date_to=end,
            ),
            first=10_000,
        )
    return {item.id for item in page.items}
