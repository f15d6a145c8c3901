"""Recurring payments and subscriptions, detected from the ledger itself."""

from __future__ import annotations

import datetime as dt
import itertools
import statistics
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from pydantic import Field

from domain.advisor.tools import ledger
from domain.advisor.tools.base import Arguments, ModelTool, ToolContext, ToolResult, minor_money
from domain.ledger import reports, totals
from domain.ledger.fx import load_table
from domain.ledger.models import CategoryKind


@dataclass(frozen=True)
class Cadence:
    name: str
    days: int  # the nominal interval
    low: int  # every gap between two charges must lie in [low, high] days
    high: int
    per_year: int


# Windows wide enough for month lengths, weekends and a few days' drift of a debit date.
CADENCES = (
    Cadence("weekly", 7, 5, 9, 52),
    Cadence("monthly", 30, 25, 37, 12),
    Cadence("quarterly", 91, 80, 102, 4),
    Cadence("yearly", 365, 340, 390, 1),
)
MIN_CHARGES = 3
AMOUNT_TOLERANCE = Decimal("0.15")  # every charge within 15% of the median charge
LAPSED_AFTER = Decimal("1.5")  # no charge for 1.5 intervals: no longer recurring


class RecurringArguments(Arguments):
    as_of: dt.date | None = Field(
        default=None, description="ISO YYYY-MM-DD; the end of the window looked at. Today."
    )
    months: int = Field(
        default=12,
        ge=3,
        le=60,
        description="How many months back to look, 3 to 60 (yearly charges need 25+).",
    )


@dataclass(frozen=True)
class Charge:
    """One payment: a transaction's expense postings to one payee, in one currency."""

    transaction_id: uuid.UUID
    date: dt.date
    minor: int
    category_id: uuid.UUID
    account_id: uuid.UUID


def _charges(postings: list[ledger.CategoryPosting]) -> dict[tuple[str, str], list[Charge]]:
    """Charges per (payee, currency); postings of one transaction (a split) add up."""
    by_transaction: dict[uuid.UUID, list[ledger.CategoryPosting]] = defaultdict(list)
    for posting in postings:
        if posting.payee and posting.payee.strip():
            by_transaction[posting.transaction_id].append(posting)
    series: dict[tuple[str, str], list[Charge]] = defaultdict(list)
    for tx_id, parts in by_transaction.items():
        first = max(parts, key=lambda p: (p.minor, p.category_id))  # the main leg of a split
        minor = sum(p.minor for p in parts if p.currency == first.currency)
        if minor <= 0:
            continue  # a refund is not a payment
        key = (first.payee.strip().casefold(), first.currency)  # type: ignore[union-attr]
        series[key].append(Charge(tx_id, first.date, minor, first.category_id, first.account_id))
    for charges in series.values():
        charges.sort(key=lambda c: (c.date, c.transaction_id))
    return series


def detect(charges: list[Charge], as_of: dt.date) -> Cadence | None:
    """The cadence of a series of charges to one payee, or None when it is not recurring.

    The rule: at least three charges; the median gap between consecutive charges picks
    the cadence (weekly, monthly, quarterly, yearly) and *every* gap must lie in that
    cadence's window (so two charges on one day, or a skipped month, break the series);
    every amount lies within 15% of the median amount (a price change passes, a random
    spend at the same shop does not); and the last charge is no older than 1.5 intervals
    before `as_of` (a cancelled subscription is not reported).
    """
    if len(charges) < MIN_CHARGES:
        return None
    gaps = [(b.date - a.date).days for a, b in itertools.pairwise(charges)]
    median_gap = statistics.median(gaps)
    cadence = next((c for c in CADENCES if c.low <= median_gap <= c.high), None)
    if cadence is None or not all(cadence.low <= gap <= cadence.high for gap in gaps):
        return None
    amounts = [Decimal(c.minor) for c in charges]
    middle = Decimal(statistics.median(amounts))
    if any(abs(amount - middle) > middle * AMOUNT_TOLERANCE for amount in amounts):
        return None
    if Decimal((as_of - charges[-1].date).days) > cadence.days * LAPSED_AFTER:
        return None
    return cadence


def _months_before(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    last = totals.month_end(year * 100 + month + 1).day
    return dt.date(year, month + 1, min(day.day, last)) + dt.timedelta(days=1)


def _next_due(last: dt.date, cadence: Cadence) -> dt.date:
    if cadence.name in ("weekly",):
        return last + dt.timedelta(days=7)
    step = {"monthly": 1, "quarterly": 3, "yearly": 12}[cadence.name]
    index = last.year * 12 + last.month - 1 + step
    year, month = divmod(index, 12)
    return dt.date(year, month + 1, min(last.day, totals.month_end(year * 100 + month + 1).day))


def _yearly(item: dict[str, Any]) -> Decimal:
    cost = item["yearly_cost"]
    return Decimal(cost["amount"]) if cost else Decimal(0)


def _divide(minor: int, by: int) -> int:
    return int((Decimal(minor) / by).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


class RecurringPaymentsTool(ModelTool[RecurringArguments]):
    name = "recurring_payments"
    description = (
        "Recurring payments and subscriptions detected from the ledger: the same payee "
        "charged at a regular interval (weekly, monthly, quarterly or yearly) for a similar "
        "amount, still active at `as_of`. Gives each one's latest charge, cadence, next "
        "expected date, monthly equivalent and yearly cost (base currency), and the "
        "transactions of each series."
    )
    arguments = RecurringArguments

    async def compute(self, ctx: ToolContext, args: RecurringArguments) -> ToolResult:
        as_of = args.as_of or ctx.today
        start = _months_before(as_of, args.months)
        ledger.period(start, as_of)
        names = await ledger.load_names(ctx)
        postings = await ledger.category_postings(
            ctx, start, as_of, names.ids_of_kind(CategoryKind.EXPENSE)
        )
        table = await load_table(ctx.session, ctx.tenant)
        base = ctx.tenant.base_currency
        unconverted: list[dict[str, str]] = []
        labels: dict[str, str] = {}
        for posting in postings:  # one spelling per payee, whatever order the rows came in
            label = (posting.payee or "").strip()
            labels[label.casefold()] = min(labels.get(label.casefold(), label), label)
        found: list[dict[str, Any]] = []
        cited: list[uuid.UUID] = []
        monthly_total = yearly_total = 0
        for (payee_key, currency), charges in _charges(postings).items():
            cadence = detect(charges, as_of)
            if cadence is None:
                continue
            latest = charges[-1]
            convert = reports.BaseConverter(table, base)
            latest_base = convert(latest.minor, currency, totals.month_of(latest.date))
            in_base = not convert.leftovers()  # False: no rate, the charge stays as it is
            yearly = latest_base * cadence.per_year
            monthly = _divide(yearly, 12)
            if in_base:
                monthly_total += monthly
                yearly_total += yearly
            else:
                unconverted.append(minor_money(latest.minor * cadence.per_year, currency))
            category = Counter(c.category_id for c in charges).most_common(1)[0][0]
            account = Counter(c.account_id for c in charges).most_common(1)[0][0]
            found.append(
                {
                    "payee": labels[payee_key],
                    "cadence": cadence.name,
                    "amount": minor_money(latest.minor, currency),
                    "amount_in_base": minor_money(latest_base, base) if in_base else None,
                    "monthly_equivalent": minor_money(monthly, base) if in_base else None,
                    "yearly_cost": minor_money(yearly, base) if in_base else None,
                    "charges": len(charges),
                    "first_charge": charges[0].date.isoformat(),
                    "last_charge": latest.date.isoformat(),
                    "next_expected": _next_due(latest.date, cadence).isoformat(),
                    "category": names.category_label(category),
                    "parent_category": names.parent_label(category),
                    "account": names.account_names.get(account, "?"),
                    "transaction_ids": [str(c.transaction_id) for c in charges],
                }
            )
            cited.extend(c.transaction_id for c in charges)
        found.sort(key=lambda item: (-_yearly(item), item["payee"].casefold()))
        data: dict[str, Any] = {
            "window": {"start": start.isoformat(), "end": as_of.isoformat()},
            "currency": base,
            "rule": (
                f"same payee, at least {MIN_CHARGES} charges, every gap within the cadence's "
                "window, every amount within 15% of the median, last charge within 1.5 "
                "intervals of the end of the window; yearly cost = latest charge x charges "
                "per year"
            ),
            "recurring": found,
            "monthly_total": minor_money(monthly_total, base),
            "yearly_total": minor_money(yearly_total, base),
        }
        if unconverted:
            data["yearly_not_converted"] = unconverted  # no FX rate: left out of the totals
        return ToolResult(data, tuple(dict.fromkeys(cited)))
