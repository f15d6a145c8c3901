"""Budgets: a monthly spending limit per expense category, its amount encrypted.

A budget on a parent category ("Food") covers its subcategories too; the spending it is
compared with is the advisor's `budget_status` tool (domain/advisor/tools).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from domain.core.errors import BadInput, NotFound
from domain.core.models import utcnow
from domain.core.money import Money
from domain.core.tenancy import Tenant
from domain.ledger.models import Budget, CategoryKind
from domain.ledger.repository import LedgerRepository

TABLE = "budgets"


@dataclass(frozen=True)
class BudgetView:
    id: uuid.UUID
    category_id: uuid.UUID
    amount: Money  # per month
    updated_at: dt.datetime


def view(tenant: Tenant, row: Budget) -> BudgetView:
    minor = tenant.cipher.open_int(row.amount_enc, TABLE, "amount", row.id)
    return BudgetView(row.id, row.category_id, Money(minor, row.currency), row.updated_at)


async def _rows(session: AsyncSession, tenant: Tenant) -> list[Budget]:
    result = await session.execute(
        select(Budget)
        .where(Budget.workspace_id == tenant.workspace_id)
        .order_by(col(Budget.created_at), col(Budget.id))
    )
    return list(result.scalars())


async def list_budgets(session: AsyncSession, tenant: Tenant) -> list[BudgetView]:
    return [view(tenant, row) for row in await _rows(session, tenant)]


async def set_budget(
    session: AsyncSession, tenant: Tenant, category_id: uuid.UUID, amount: Decimal | str
) -> BudgetView:
    """Create or replace the monthly budget of an expense category, in the base currency."""
    tenant.require_write()
    category = await LedgerRepository(session, tenant.workspace_id).category(category_id)
    if category is None:
        raise NotFound("Category not found", field="categoryId")
    if category.kind != CategoryKind.EXPENSE.value:
        raise BadInput("Budgets are set on expense categories", field="categoryId")
    money = Money.parse(amount, tenant.base_currency)
    if money.minor <= 0:
        raise BadInput("A budget is a positive amount per month", field="amount")
    existing = [row for row in await _rows(session, tenant) if row.category_id == category_id]
    row = existing[0] if existing else None
    if row is None:
        row = Budget(
            workspace_id=tenant.workspace_id,
            category_id=category_id,
            currency=money.currency,
            amount_enc=b"",
        )
        session.add(row)
    row.currency = money.currency
    row.amount_enc = tenant.cipher.seal_int(money.minor, TABLE, "amount", row.id)
    row.updated_at = utcnow()
    await session.flush()
    return view(tenant, row)


async def remove_budget(session: AsyncSession, tenant: Tenant, category_id: uuid.UUID) -> bool:
    """Delete the category's budget; False when it had none."""
    tenant.require_write()
    if await LedgerRepository(session, tenant.workspace_id).category(category_id) is None:
        raise NotFound("Category not found", field="categoryId")
    result = await session.execute(
        delete(Budget).where(
            col(Budget.workspace_id) == tenant.workspace_id,
            col(Budget.category_id) == category_id,
        )
    )
    await session.flush()
    return bool(getattr(result, "rowcount", 0))
