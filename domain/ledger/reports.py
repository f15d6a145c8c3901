"""Period reports: spending summary, cash flow and net worth, in the base currency.

Whole months come from the month totals; partial months at the edges of a period
are summed from their postings. Each month's amounts are converted at the rate in
force at the end of that month (or today, for the current month).
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from domain.core.errors import BadInput
from domain.core.money import Money, convert
from domain.core.tenancy import Tenant
from domain.ledger import accounts as accounts_service
from domain.ledger import totals
from domain.ledger.fx import FxTable, load_table
from domain.ledger.models import AccountKind, Category, CategoryKind
from domain.ledger.repository import LedgerRepository
from domain.ledger.transactions import POSTING_TABLE, TX_TABLE

MAX_PERIOD_DAYS = 366 * 10
EARLIEST, LATEST = dt.date(1900, 1, 1), dt.date(9998, 12, 31)
LIABILITY_KINDS = {AccountKind.CREDIT_CARD.value, AccountKind.LOAN.value}


class GroupBy(enum.StrEnum):
    CATEGORY = "category"
    MONTH = "month"
    PAYEE = "payee"


@dataclass(frozen=True)
class Period:
    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise BadInput("The period starts after it ends", field="period")
        if (self.end - self.start).days > MAX_PERIOD_DAYS:
            raise BadInput("A period spans at most ten years", field="period")
        if not (self.start >= EARLIEST and self.end <= LATEST):
            raise BadInput(f"A period lies between {EARLIEST} and {LATEST}", field="period")

    def months(self) -> list[int]:
        found, month = [], totals.month_of(self.start)
        while month <= totals.month_of(self.end):
            found.append(month)
            month = totals.next_month(month)
        return found


@dataclass(frozen=True)
class Amount:
    """A signed sum of postings of one target, month and currency."""

    target_id: uuid.UUID
    month: int
    currency: str
    minor: int
    postings: int
    payee: str | None = None


@dataclass
class SummaryRow:
    key: str
    label: str
    amount: Money
    postings: int
    category_id: uuid.UUID | None = None
    month: int | None = None


@dataclass
class Summary:
    period: Period
    total: Money
    rows: list[SummaryRow]
    unconverted: list[Money] = field(default_factory=list)


@dataclass
class CashflowMonth:
    month: int
    income: Money
    expenses: Money
    net: Money


@dataclass
class Cashflow:
    period: Period
    income: Money
    expenses: Money
    net: Money
    months: list[CashflowMonth]
    unconverted: list[Money] = field(default_factory=list)


@dataclass
class NetWorthPoint:
    month: int
    assets: Money
    liabilities: Money
    net: Money


@dataclass
class NetWorth:
    assets: Money
    liabilities: Money
    net: Money
    history: list[NetWorthPoint]
    unconverted: list[Money] = field(default_factory=list)


def _rate_date(month: int) -> dt.date:
    return min(totals.month_end(month), dt.date.today())


async def _amounts(
    session: AsyncSession,
    tenant: Tenant,
    period: Period,
    category_ids: list[uuid.UUID],
    *,
    with_payee: bool = False,
) -> list[Amount]:
    """Category amounts per month: month totals for whole months, postings for the edges."""
    months = period.months()
    whole = [
        m
        for m in months
        if totals.month_start(m) >= period.start and totals.month_end(m) <= period.end
    ]
    found: list[Amount] = []
    scan_ranges: list[tuple[dt.date, dt.date]] = []
    if whole and not with_payee:
        for total in await totals.read(
            session, tenant, category_ids, month_from=whole[0], month_to=whole[-1]
        ):
            found.append(
                Amount(total.target_id, total.month, total.currency, total.amount, total.postings)
            )
        head_end = totals.month_start(whole[0]) - dt.timedelta(days=1)
        tail_start = totals.month_end(whole[-1]) + dt.timedelta(days=1)
        if period.start <= head_end:
            scan_ranges.append((period.start, head_end))
        if tail_start <= period.end:
            scan_ranges.append((tail_start, period.end))
    else:
        scan_ranges.append((period.start, period.end))
    for start, end in scan_ranges:
        found.extend(await _scan(session, tenant, start, end, category_ids, with_payee))
    return found


async def category_amounts(
    session: AsyncSession, tenant: Tenant, period: Period, category_ids: list[uuid.UUID]
) -> list[Amount]:
    """The signed sums per category, month and currency of a period (month totals for
    whole months, postings for partial ones): what the reports below are built from."""
    return await _amounts(session, tenant, period, category_ids)


async def _scan(
    session: AsyncSession,
    tenant: Tenant,
    start: dt.date,
    end: dt.date,
    category_ids: list[uuid.UUID],
    with_payee: bool,
) -> list[Amount]:
    repository = LedgerRepository(session, tenant.workspace_id)
    rows = await repository.posting_amounts_between(start, end, category_ids, with_payee=with_payee)
    cipher = tenant.cipher
    payees: dict[uuid.UUID, str | None] = {}
    sums: dict[tuple[uuid.UUID, int, str, str | None], list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        payee = None
        if with_payee:
            transaction_id = row[5]
            if transaction_id not in payees:
                payees[transaction_id] = cipher.open_optional(
                    row[6], TX_TABLE, "payee", transaction_id
                )
            payee = payees[transaction_id]
        key = (row[1], totals.month_of(row[2]), row[3], payee)
        sums[key][0] += cipher.open_int(row[4], POSTING_TABLE, "amount", row[0])
        sums[key][1] += 1
    return [
        Amount(target, month, currency, minor, count, payee)
        for (target, month, currency, payee), (minor, count) in sums.items()
    ]


class BaseConverter:
    """Converts a month's amounts to the base currency at the rate in force at that month's
    end (today, for the current month); keeps what no rate covers aside, per currency."""

    def __init__(self, table: FxTable, base: str) -> None:
        self.table, self.base = table, base
        self.unconverted: dict[str, int] = defaultdict(int)

    def __call__(self, minor: int, currency: str, month: int) -> int:
        if currency == self.base:
            return minor
        rate = self.table.rate(currency, self.base, _rate_date(month))
        if rate is None:
            self.unconverted[currency] += minor
            return 0
        return convert(minor, currency, rate, self.base)

    def leftovers(self) -> list[Money]:
        return [Money(minor, c) for c, minor in sorted(self.unconverted.items()) if minor]


def _categories_of(all_categories: Iterable[Category], kind: CategoryKind) -> list[Category]:
    return [category for category in all_categories if category.kind == kind.value]


async def spending_summary(
    session: AsyncSession, tenant: Tenant, period: Period, group_by: GroupBy
) -> Summary:
    """Spending (expense categories; refunds reduce it) grouped by category, month or payee."""
    repository = LedgerRepository(session, tenant.workspace_id)
    expense = {c.id: c for c in _categories_of(await repository.categories(), CategoryKind.EXPENSE)}
    amounts = await _amounts(
        session, tenant, period, list(expense), with_payee=group_by is GroupBy.PAYEE
    )
    convert = BaseConverter(await load_table(session, tenant), tenant.base_currency)
    groups: dict[str, SummaryRow] = {}
    base = tenant.base_currency
    for amount in amounts:
        value = convert(amount.minor, amount.currency, amount.month)
        if group_by is GroupBy.CATEGORY:
            key, label = amount.target_id.hex, expense[amount.target_id].name
        elif group_by is GroupBy.MONTH:
            key, label = str(amount.month), f"{amount.month // 100}-{amount.month % 100:02d}"
        else:
            label = amount.payee or "(no payee)"
            key = label.casefold()
        row = groups.get(key)
        if row is None:
            row = groups[key] = SummaryRow(key=key, label=label, amount=Money(0, base), postings=0)
            if group_by is GroupBy.CATEGORY:
                row.category_id = amount.target_id
            if group_by is GroupBy.MONTH:
                row.month = amount.month
        row.amount = Money(row.amount.minor + value, base)
        row.postings += amount.postings
    rows = [row for row in groups.values() if row.postings]
    if group_by is GroupBy.MONTH:
        rows.sort(key=lambda r: r.key)
    else:
        rows.sort(key=lambda r: (-r.amount.minor, r.label))
    total = Money(sum(row.amount.minor for row in rows), base)
    return Summary(period=period, total=total, rows=rows, unconverted=convert.leftovers())


async def cashflow(session: AsyncSession, tenant: Tenant, period: Period) -> Cashflow:
    """Income and expenses per month; transfers between own accounts are neither."""
    repository = LedgerRepository(session, tenant.workspace_id)
    all_categories = await repository.categories()
    income_ids = {c.id for c in _categories_of(all_categories, CategoryKind.INCOME)}
    expense_ids = {c.id for c in _categories_of(all_categories, CategoryKind.EXPENSE)}
    amounts = await _amounts(session, tenant, period, [*income_ids, *expense_ids])
    convert = BaseConverter(await load_table(session, tenant), tenant.base_currency)
    income: dict[int, int] = defaultdict(int)
    expenses: dict[int, int] = defaultdict(int)
    for amount in amounts:
        value = convert(amount.minor, amount.currency, amount.month)
        if amount.target_id in income_ids:
            income[amount.month] -= value  # income postings are credits (negative)
        else:
            expenses[amount.month] += value
    base = tenant.base_currency
    months = [
        CashflowMonth(
            month=m,
            income=Money(income[m], base),
            expenses=Money(expenses[m], base),
            net=Money(income[m] - expenses[m], base),
        )
        for m in period.months()
    ]
    total_income, total_expenses = sum(income.values()), sum(expenses.values())
    return Cashflow(
        period=period,
        income=Money(total_income, base),
        expenses=Money(total_expenses, base),
        net=Money(total_income - total_expenses, base),
        months=months,
        unconverted=convert.leftovers(),
    )


async def net_worth(
    session: AsyncSession, tenant: Tenant, *, months: int = 12, today: dt.date | None = None
) -> NetWorth:
    """Assets less liabilities now, and at the end of each of the last `months` months."""
    if not 1 <= months <= 120:
        raise BadInput("History covers 1 to 120 months", field="months")
    today = today or dt.date.today()
    accounts = await LedgerRepository(session, tenant.workspace_id).accounts()
    all_totals = await totals.read(session, tenant, [a.id for a in accounts])
    table = await load_table(session, tenant)
    convert = BaseConverter(table, tenant.base_currency)
    history_months: list[int] = []
    month = totals.month_of(today)
    for _ in range(months):
        history_months.append(month)
        year, number = divmod(month, 100)
        month = (year - 1) * 100 + 12 if number == 1 else month - 1
    history_months.reverse()
    by_account: dict[uuid.UUID, list[totals.MonthAmount]] = defaultdict(list)
    for total in all_totals:
        by_account[total.target_id].append(total)
    points = []
    for month in history_months:
        convert = BaseConverter(table, tenant.base_currency)  # leftovers of the last month only
        assets = liabilities = 0
        for account in accounts:
            opening = accounts_service.view(tenant, account).opening_balance.minor
            if totals.month_of(account.opening_date) > month:
                opening = 0
            balance = opening + sum(t.amount for t in by_account[account.id] if t.month <= month)
            value = convert(balance, account.currency, month)
            if account.kind in LIABILITY_KINDS or value < 0:
                liabilities += -value
            else:
                assets += value
        points.append((month, assets, liabilities))
    base = tenant.base_currency
    history = [
        NetWorthPoint(m, Money(a, base), Money(li, base), Money(a - li, base))
        for m, a, li in points
    ]
    latest = history[-1]
    # Postings dated after today (scheduled) are in the balance but not in "now".
    return NetWorth(
        assets=latest.assets,
        liabilities=latest.liabilities,
        net=latest.net,
        history=history,
        unconverted=convert.leftovers(),
    )
