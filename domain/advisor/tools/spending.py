"""Spending by category, payee, account or month, and the comparison of two periods."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from domain.advisor.tools import ledger
from domain.advisor.tools.base import (
    Arguments,
    ModelTool,
    ToolContext,
    ToolResult,
    minor_money,
    percent,
)
from domain.ledger import reports, totals
from domain.ledger.models import CategoryKind

GroupBy = Literal["category", "payee", "account", "month"]
NO_PAYEE = "(no payee)"


class SpendingArguments(Arguments):
    start: dt.date = Field(description="First day, ISO YYYY-MM-DD, included.")
    end: dt.date = Field(description="Last day, ISO YYYY-MM-DD, included.")
    group_by: GroupBy = "category"
    categories: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Expense category names or ids; a parent includes its subcategories.",
    )
    payees: list[str] = Field(
        default_factory=list, max_length=50, description="Payee names (case-insensitive)."
    )
    accounts: list[str] = Field(default_factory=list, max_length=50, description="Account names.")
    limit: int | None = Field(default=None, ge=1, le=200, description="At most this many rows.")


@dataclass(frozen=True)
class Filters:
    categories: set[uuid.UUID]
    payees: set[str]
    accounts: set[uuid.UUID]


def _filters(
    names: ledger.Names, categories: list[str], payees: list[str], accounts: list[str]
) -> Filters:
    expense = names.ids_of_kind(CategoryKind.EXPENSE)
    return Filters(
        categories=ledger.resolve_categories(names, categories) if categories else expense,
        payees={payee.strip().casefold() for payee in payees},
        accounts=ledger.resolve_accounts(names, accounts) if accounts else set(),
    )


async def _postings(
    ctx: ToolContext, span: reports.Period, filters: Filters, with_payee: bool
) -> list[ledger.CategoryPosting]:
    found = await ledger.category_postings(
        ctx, span.start, span.end, filters.categories, with_payee=with_payee
    )
    if filters.payees:
        found = [p for p in found if (p.payee or "").strip().casefold() in filters.payees]
    if filters.accounts:
        found = [p for p in found if p.account_id in filters.accounts]
    return found


def _grouping(
    names: ledger.Names, group_by: GroupBy
) -> tuple[Callable[[ledger.CategoryPosting], Hashable], Callable[[Hashable], dict[str, Any]]]:
    """The key of a posting's group, and how a group key is described in the result."""
    labels: dict[str, str] = {}

    def key(posting: ledger.CategoryPosting) -> Hashable:
        if group_by == "category":
            return posting.category_id
        if group_by == "account":
            return posting.account_id
        if group_by == "month":
            return totals.month_of(posting.date)
        label = (posting.payee or "").strip() or NO_PAYEE
        key = label.casefold()
        labels[key] = min(labels.get(key, label), label)  # the same spelling in any row order
        return key

    def describe(group_key: Hashable) -> dict[str, Any]:
        if isinstance(group_key, int):
            return {"key": ledger.month_label(group_key), "label": ledger.month_label(group_key)}
        if isinstance(group_key, uuid.UUID) and group_by == "category":
            return {
                "key": str(group_key),
                "label": names.category_label(group_key),
                "parent": names.parent_label(group_key),
            }
        if isinstance(group_key, uuid.UUID):
            return {"key": str(group_key), "label": names.account_names.get(group_key, "?")}
        return {"key": str(group_key), "label": labels[str(group_key)]}

    return key, describe


@dataclass
class Spending:
    rows: list[dict[str, Any]]
    total_minor: int
    transactions: tuple[uuid.UUID, ...]
    unconverted: list[dict[str, str]]
    groups: dict[Hashable, ledger.Group]
    describe: Callable[[Hashable], dict[str, Any]]
    payees: set[str]  # casefolded, when payees were read


async def spending_in(
    ctx: ToolContext, names: ledger.Names, span: reports.Period, filters: Filters, group_by: GroupBy
) -> Spending:
    convert = await ledger.converter(ctx)
    key, describe = _grouping(names, group_by)
    payees: set[str] = set()
    if group_by in ("category", "month") and not filters.payees and not filters.accounts:
        sums = await ledger.category_sums(ctx, span, filters.categories)
        by_month = group_by == "month"
        groups = ledger.summarise_sums(sums, lambda c, m: m if by_month else c, convert)
        cited = sums.transaction_ids()
    else:
        postings = await _postings(ctx, span, filters, group_by == "payee" or bool(filters.payees))
        groups = ledger.summarise(postings, key, convert)
        cited = ledger.transaction_ids(postings)
        payees = {(p.payee or "").strip().casefold() for p in postings if p.payee}
    base = ctx.tenant.base_currency
    total = sum(group.base_minor for group in groups.values())
    described = {group_key: describe(group_key) for group_key in groups}
    if group_by == "month":
        order = sorted(groups, key=lambda k: described[k]["key"])
    else:
        order = sorted(
            groups, key=lambda k: (-groups[k].base_minor, described[k]["label"].casefold())
        )
    rows = []
    for group_key in order:
        group = groups[group_key]
        row = {
            **described[group_key],
            "amount": minor_money(group.base_minor, base),
            "share_percent": percent(group.base_minor, total),
            "transactions": len(group.transactions or ()),
        }
        if set(group.native or {}) != {base}:
            row["by_currency"] = group.native_amounts()
        rows.append(row)
    return Spending(
        rows=rows,
        total_minor=total,
        transactions=cited,
        unconverted=ledger.unconverted(convert),
        groups=groups,
        describe=describe,
        payees=payees,
    )


def _filter_echo(names: ledger.Names, filters: Filters, explicit: bool) -> dict[str, Any]:
    return {
        "categories": sorted(names.category_label(c) for c in filters.categories)
        if explicit
        else "all expense categories",
        "payees": sorted(filters.payees),
        "accounts": sorted(names.account_names[a] for a in filters.accounts),
    }


class SpendingTool(ModelTool[SpendingArguments]):
    name = "spending"
    description = (
        "Spending (expense categories, refunds subtracted; transfers between own accounts "
        "excluded) in a date range, grouped by category, payee, account or month, in the "
        "workspace's base currency. Foreign-currency amounts are converted at the FX rate in "
        "force at the end of their month. Returns the transactions used."
    )
    arguments = SpendingArguments

    async def compute(self, ctx: ToolContext, args: SpendingArguments) -> ToolResult:
        span = ledger.period(args.start, args.end)
        names = await ledger.load_names(ctx)
        filters = _filters(names, args.categories, args.payees, args.accounts)
        found = await spending_in(ctx, names, span, filters, args.group_by)
        rows = found.rows[: args.limit] if args.limit else found.rows
        base = ctx.tenant.base_currency
        data: dict[str, Any] = {
            "period": {"start": span.start.isoformat(), "end": span.end.isoformat()},
            "group_by": args.group_by,
            "currency": base,
            "total": minor_money(found.total_minor, base),
            "transactions": len(found.transactions),
            "rows": rows,
            "filters": _filter_echo(names, filters, bool(args.categories)),
        }
        if len(rows) < len(found.rows):
            data["rows_omitted"] = len(found.rows) - len(rows)
        missing = sorted(filters.payees - found.payees)
        if missing:
            data["payees_without_spending"] = missing  # none in the period (or unknown)
        if found.unconverted:
            data["unconverted"] = found.unconverted
        return ToolResult(data, found.transactions)


class PeriodArguments(Arguments):
    start: dt.date = Field(description="First day, ISO YYYY-MM-DD, included.")
    end: dt.date = Field(description="Last day, ISO YYYY-MM-DD, included.")


class CompareArguments(Arguments):
    first: PeriodArguments = Field(description="The earlier (or reference) period.")
    second: PeriodArguments = Field(description="The period compared with the first.")
    group_by: GroupBy = "category"
    categories: list[str] = Field(default_factory=list, max_length=50)
    payees: list[str] = Field(default_factory=list, max_length=50)


class ComparePeriodsTool(ModelTool[CompareArguments]):
    name = "compare_periods"
    description = (
        "Compare spending of two date ranges, overall and per category, payee, account or "
        "month: both amounts, the change (second minus first) and the change in percent of "
        "the first, in the base currency. Returns the transactions of both periods."
    )
    arguments = CompareArguments

    async def compute(self, ctx: ToolContext, args: CompareArguments) -> ToolResult:
        first = ledger.period(args.first.start, args.first.end)
        second = ledger.period(args.second.start, args.second.end)
        names = await ledger.load_names(ctx)
        filters = _filters(names, args.categories, args.payees, [])
        one = await spending_in(ctx, names, first, filters, args.group_by)
        two = await spending_in(ctx, names, second, filters, args.group_by)
        base = ctx.tenant.base_currency
        keys = list(dict.fromkeys([*one.groups, *two.groups]))
        rows = []
        for key in keys:
            a = one.groups[key].base_minor if key in one.groups else 0
            b = two.groups[key].base_minor if key in two.groups else 0
            describe = one.describe if key in one.groups else two.describe
            rows.append(
                {
                    **describe(key),
                    "first": minor_money(a, base),
                    "second": minor_money(b, base),
                    "change": minor_money(b - a, base),
                    "change_percent": percent(b - a, a),
                    "_sort": -max(a, b),
                }
            )
        rows.sort(key=lambda r: (r["_sort"], r["label"].casefold()))
        for row in rows:
            del row["_sort"]
        data: dict[str, Any] = {
            "first": {"start": first.start.isoformat(), "end": first.end.isoformat()},
            "second": {"start": second.start.isoformat(), "end": second.end.isoformat()},
            "group_by": args.group_by,
            "currency": base,
            "total": {
                "first": minor_money(one.total_minor, base),
                "second": minor_money(two.total_minor, base),
                "change": minor_money(two.total_minor - one.total_minor, base),
                "change_percent": percent(two.total_minor - one.total_minor, one.total_minor),
            },
            "rows": rows,
            "filters": _filter_echo(names, filters, bool(args.categories)),
        }
        if one.unconverted or two.unconverted:
            data["unconverted"] = {"first": one.unconverted, "second": two.unconverted}
        cited = tuple(dict.fromkeys([*one.transactions, *two.transactions]))
        return ToolResult(data, cited)
