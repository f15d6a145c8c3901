"""Budget status: each budgeted category's spending in a month against its limit."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import Field

from domain.advisor.tools import ledger
from domain.advisor.tools.base import (
    Arguments,
    ModelTool,
    ToolContext,
    ToolInputError,
    ToolResult,
    minor_money,
    percent,
)
from domain.core.money import convert as convert_money
from domain.ledger import budgets, categories, totals
from domain.ledger.fx import load_table

NEAR_PERCENT = 90


class BudgetStatusArguments(Arguments):
    month: str = Field(
        pattern=r"^(19|[2-9]\d)\d{2}-(0[1-9]|1[0-2])$", description="The month, YYYY-MM."
    )


class BudgetStatusTool(ModelTool[BudgetStatusArguments]):
    name = "budget_status"
    description = (
        "For a month (YYYY-MM): every budgeted expense category (a parent's budget covers its "
        "subcategories) with its monthly budget, the amount spent (refunds subtracted), what "
        "remains, the percent used and a status (under, near at 90%+, over), in the base "
        "currency. Returns the transactions counted."
    )
    arguments = BudgetStatusArguments

    async def compute(self, ctx: ToolContext, args: BudgetStatusArguments) -> ToolResult:
        month = int(args.month[:4]) * 100 + int(args.month[5:])
        span = ledger.period(totals.month_start(month), totals.month_end(month))
        names = await ledger.load_names(ctx)
        views = await budgets.list_budgets(ctx.session, ctx.tenant)
        base = ctx.tenant.base_currency
        tree = [(c.id, c.parent_id) for c in names.categories.values()]
        covered = {v.category_id: categories.with_descendants(tree, {v.category_id}) for v in views}
        every: set[uuid.UUID] = set().union(*covered.values())
        sums = await ledger.category_sums(ctx, span, every)
        convert = await ledger.converter(ctx)
        table = await load_table(ctx.session, ctx.tenant)
        rows: list[dict[str, Any]] = []
        cited: list[uuid.UUID] = []
        for view in sorted(views, key=lambda v: names.category_label(v.category_id).casefold()):
            own = covered[view.category_id]
            groups = ledger.summarise_sums(sums, lambda _c, _m: "all", convert, own)
            spent = groups["all"].base_minor if groups else 0
            used_by = sums.transaction_ids(own)
            limit = view.amount.minor
            if view.amount.currency != base:
                rate = table.rate(view.amount.currency, base, span.end)
                if rate is None:
                    raise ToolInputError(
                        f"No {view.amount.currency}/{base} rate to compare a budget with",
                        field="month",
                    )
                limit = convert_money(limit, view.amount.currency, rate, base)
            used = percent(spent, limit)
            status = "under"
            if spent > limit:
                status = "over"
            elif spent * 100 >= limit * NEAR_PERCENT:
                status = "near"
            rows.append(
                {
                    "category": names.category_label(view.category_id),
                    "category_id": str(view.category_id),
                    "budget": minor_money(limit, base),
                    "spent": minor_money(spent, base),
                    "remaining": minor_money(limit - spent, base),
                    "percent_used": used,
                    "status": status,
                    "transactions": len(used_by),
                }
            )
            cited.extend(used_by)
        data: dict[str, Any] = {
            "month": args.month,
            "currency": base,
            "budgets": rows,
        }
        if not rows:
            data["note"] = "No budgets are set in this workspace."
        leftovers = ledger.unconverted(convert)
        if leftovers:
            data["unconverted"] = leftovers
        return ToolResult(data, tuple(dict.fromkeys(cited)))
