"""`search_transactions`: hybrid retrieval (the TransactionSearch port) over this workspace."""

from __future__ import annotations

import datetime as dt
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
    ToolUnavailable,
    money,
)
from domain.ledger import transactions as tx_service
from domain.ledger.models import CategoryKind
from domain.ledger.repository import LedgerRepository


class SearchArguments(Arguments):
    query: str = Field(min_length=1, max_length=200, description="What to look for, in words.")
    limit: int = Field(default=10, ge=1, le=50)
    start: dt.date | None = Field(default=None, description="ISO YYYY-MM-DD, included.")
    end: dt.date | None = Field(default=None, description="ISO YYYY-MM-DD, included.")
    accounts: list[str] = Field(default_factory=list, max_length=50, description="Account names.")
    categories: list[str] = Field(
        default_factory=list, max_length=50, description="Category names; parents include children."
    )


class SearchTransactionsTool(ModelTool[SearchArguments]):
    name = "search_transactions"
    description = (
        "Find transactions by meaning or name (payee, narration, category): misspellings and "
        "descriptions such as 'rides to the airport' work. Optional date range, accounts and "
        "categories. Returns each match's date, payee, amount (own currency), account and "
        "categories, best match first."
    )
    arguments = SearchArguments

    async def compute(self, ctx: ToolContext, args: SearchArguments) -> ToolResult:
        if ctx.search is None:
            raise ToolUnavailable(
                "Transaction search is not available here (no search index is configured)"
            )
        if args.start and args.end and args.start > args.end:
            raise ToolInputError("start is after end", field="start")
        names = await ledger.load_names(ctx)
        kinds = (CategoryKind.EXPENSE, CategoryKind.INCOME)
        category_ids = ledger.resolve_categories(names, args.categories, kinds)
        account_ids = ledger.resolve_accounts(names, args.accounts)
        hits = await ctx.search.search(
            ctx.tenant.workspace_id,
            args.query.strip(),
            limit=args.limit,
            start=args.start,
            end=args.end,
            account_ids=sorted(account_ids),
            category_ids=sorted(category_ids),
        )
        repository = LedgerRepository(ctx.session, ctx.tenant.workspace_id)
        # Scoped to this workspace: a hit on any other workspace's id finds nothing here.
        rows = {
            row.id: row
            for row in await repository.transactions_by_ids(h.transaction_id for h in hits)
        }
        postings = await tx_service.postings_of(ctx.session, ctx.tenant, list(rows))
        found: list[dict[str, Any]] = []
        cited: list[uuid.UUID] = []
        for hit in hits:
            row = rows.get(hit.transaction_id)
            if row is None or hit.transaction_id in cited:
                continue
            item = tx_service.view(ctx.tenant, row)
            found.append(_describe(item, postings.get(row.id, []), names, hit.score))
            cited.append(row.id)
        data = {"query": args.query, "results": found, "count": len(found)}
        return ToolResult(data, tuple(cited))


def _describe(
    item: tx_service.TransactionView,
    postings: list[tx_service.PostingView],
    names: ledger.Names,
    score: float,
) -> dict[str, Any]:
    categories: dict[str, None] = {}
    accounts: dict[str, None] = {names.account_names.get(item.account_id, "?"): None}
    for posting in postings:
        if posting.category_id is not None:
            category = names.categories.get(posting.category_id)
            if category is not None and category.kind != CategoryKind.EXCHANGE.value:
                categories[category.name] = None
        elif posting.account_id is not None:
            accounts[names.account_names.get(posting.account_id, "?")] = None
    return {
        "id": str(item.id),
        "date": item.date.isoformat(),
        "payee": item.payee,
        "amount": money(item.amount),
        "account": names.account_names.get(item.account_id, "?"),
        "accounts": list(accounts),
        "category": ", ".join(categories) or None,  # a split names each of its categories
        "categories": list(categories),
        "kind": item.kind.value,
        "score": round(score, 6),
    }
