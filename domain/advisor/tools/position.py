"""Cash flow (income, expenses, net, savings rate) and net worth (balances and history)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from typing import Any, cast

from pydantic import Field

from domain.advisor.tools import ledger
from domain.advisor.tools.base import (
    Arguments,
    ModelTool,
    ToolContext,
    ToolResult,
    minor_money,
    money,
    percent,
)
from domain.ledger import accounts as accounts_service
from domain.ledger import reports, totals
from domain.ledger.fx import load_table
from domain.ledger.models import CategoryKind
from domain.ledger.repository import LedgerRepository


class CashFlowArguments(Arguments):
    start: dt.date = Field(description="First day, ISO YYYY-MM-DD, included.")
    end: dt.date = Field(description="Last day, ISO YYYY-MM-DD, included.")


class CashFlowTool(ModelTool[CashFlowArguments]):
    name = "cash_flow"
    description = (
        "Income, expenses, net (income minus expenses) and savings rate (net in percent of "
        "income) per month and in total for a date range, in the base currency. Transfers "
        "between own accounts are neither income nor expense. Returns the transactions used."
    )
    arguments = CashFlowArguments

    async def compute(self, ctx: ToolContext, args: CashFlowArguments) -> ToolResult:
        span = ledger.period(args.start, args.end)
        names = await ledger.load_names(ctx)
        income_ids = names.ids_of_kind(CategoryKind.INCOME)
        expense_ids = names.ids_of_kind(CategoryKind.EXPENSE)
        sums = await ledger.category_sums(ctx, span, income_ids | expense_ids)
        convert = await ledger.converter(ctx)
        groups = ledger.summarise_sums(sums, lambda c, m: (m, c in income_ids), convert)
        income: dict[int, int] = defaultdict(int)
        expenses: dict[int, int] = defaultdict(int)
        for key, group in groups.items():
            month, is_income = cast(tuple[int, bool], key)
            if is_income:
                income[month] -= group.base_minor  # income postings are credits (negative)
            else:
                expenses[month] += group.base_minor
        base = ctx.tenant.base_currency
        cited = sums.transaction_ids()
        months = [_flow(ledger.month_label(m), income[m], expenses[m], base) for m in span.months()]
        data: dict[str, Any] = {
            "period": {"start": span.start.isoformat(), "end": span.end.isoformat()},
            "currency": base,
            "total": _flow(None, sum(income.values()), sum(expenses.values()), base),
            "months": months,
            "transactions": len(cited),
        }
        leftovers = ledger.unconverted(convert)
        if leftovers:
            data["unconverted"] = leftovers
        return ToolResult(data, cited)


def _flow(label: str | None, income: int, expenses: int, currency: str) -> dict[str, Any]:
    flow: dict[str, Any] = {"month": label} if label else {}
    flow.update(
        income=minor_money(income, currency),
        expenses=minor_money(expenses, currency),
        net=minor_money(income - expenses, currency),
        # None when there was no income: a rate of an empty month means nothing.
        savings_rate_percent=percent(income - expenses, income) if income > 0 else None,
    )
    return flow


class NetWorthArguments(Arguments):
    as_of: dt.date | None = Field(
        default=None, description="ISO YYYY-MM-DD; balances at the end of its month. Today."
    )
    months: int = Field(default=12, ge=1, le=120, description="Months of history, 1 to 120.")


class NetWorthTool(ModelTool[NetWorthArguments]):
    name = "net_worth"
    description = (
        "Balances of every account (in its own currency and in the base currency) at the end "
        "of the month of `as_of`, assets, liabilities (credit cards, loans and overdrawn "
        "accounts) and net worth, with month-end net worth history. Cites each account's "
        "latest transaction up to then."
    )
    arguments = NetWorthArguments

    async def compute(self, ctx: ToolContext, args: NetWorthArguments) -> ToolResult:
        as_of = args.as_of or ctx.today
        ledger.period(as_of, as_of)  # inside the supported dates
        month = totals.month_of(as_of)
        worth = await reports.net_worth(ctx.session, ctx.tenant, months=args.months, today=as_of)
        names = await ledger.load_names(ctx)
        all_totals = await totals.read(ctx.session, ctx.tenant, list(names.accounts))
        table = await load_table(ctx.session, ctx.tenant)
        base = ctx.tenant.base_currency
        balances = []
        for account in names.accounts.values():
            opening = accounts_service.view(ctx.tenant, account).opening_balance.minor
            if totals.month_of(account.opening_date) > month:
                opening = 0
            native = opening + sum(
                t.amount for t in all_totals if t.target_id == account.id and t.month <= month
            )
            convert = reports.BaseConverter(table, base)
            value = convert(native, account.currency, month)
            converted = not convert.leftovers()  # no rate: no base-currency figure
            balances.append(
                {
                    "account": names.account_names[account.id],
                    "id": str(account.id),
                    "kind": account.kind,
                    "archived": account.archived,
                    "balance": minor_money(native, account.currency),
                    "balance_in_base": minor_money(value, base) if converted else None,
                    "side": "liability"
                    if account.kind in reports.LIABILITY_KINDS or value < 0
                    else "asset",
                }
            )
        data: dict[str, Any] = {
            "as_of": as_of.isoformat(),
            "balances_at": totals.month_end(month).isoformat(),
            "currency": base,
            "assets": money(worth.assets),
            "liabilities": money(worth.liabilities),
            "net_worth": money(worth.net),
            "accounts": balances,
            "history": [
                {
                    "month": ledger.month_label(point.month),
                    "assets": money(point.assets),
                    "liabilities": money(point.liabilities),
                    "net_worth": money(point.net),
                }
                for point in worth.history
            ],
        }
        if worth.unconverted:
            data["unconverted"] = [money(m) for m in worth.unconverted]
        cited = await _latest_transactions(ctx, list(names.accounts), totals.month_end(month))
        return ToolResult(data, cited)


async def _latest_transactions(
    ctx: ToolContext, account_ids: list[uuid.UUID], until: dt.date
) -> tuple[uuid.UUID, ...]:
    """Each account's latest transaction on or before `until`: the balance is current
    through it (citing every transaction ever posted would say nothing more)."""
    repository = LedgerRepository(ctx.session, ctx.tenant.workspace_id)
    found: dict[uuid.UUID, None] = {}
    for account_id in account_ids:
        page = await repository.transaction_page(
            limit=1, after=None, account_ids=[account_id], date_to=until
        )
        for row in page:
            found[row.id] = None
    return tuple(found)
