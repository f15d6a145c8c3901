"""Categories: the income and expense counter-accounts, hierarchical."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from domain.core.errors import BadInput, NotFound
from domain.core.tenancy import Tenant
from domain.ledger.models import Category, CategoryKind
from domain.ledger.repository import LedgerRepository

EXCHANGE_CATEGORY = "Currency exchange"

DEFAULT_CATEGORIES: dict[CategoryKind, dict[str, list[str]]] = {
    CategoryKind.INCOME: {
        "Salary": [],
        "Interest": [],
        "Dividends": [],
        "Other income": [],
    },
    CategoryKind.EXPENSE: {
        "Housing": ["Rent", "Utilities", "Maintenance"],
        "Food": ["Groceries", "Dining out", "Food delivery"],
        "Transport": ["Fuel", "Rides", "Public transport"],
        "Shopping": ["Clothing", "Electronics", "Household"],
        "Subscriptions": ["Streaming", "Software", "Phone & internet"],
        "Health": ["Pharmacy", "Doctor", "Fitness"],
        "Insurance": [],
        "Education": [],
        "Travel": [],
        "Entertainment": [],
        "Loan interest": [],
        "Fees & charges": [],
        "Gifts & donations": [],
        "Other expenses": [],
    },
}


def _kind(kind: str) -> CategoryKind:
    try:
        chosen = CategoryKind(kind.lower())
    except ValueError:
        raise BadInput(f"Unknown category kind {kind!r}", field="kind") from None
    if chosen is CategoryKind.EXCHANGE:
        raise BadInput("The exchange category is managed by the system", field="kind")
    return chosen


async def create_defaults(session: AsyncSession, tenant: Tenant) -> None:
    for kind, tree in DEFAULT_CATEGORIES.items():
        for parent_name, children in tree.items():
            parent = Category(workspace_id=tenant.workspace_id, kind=kind.value, name=parent_name)
            session.add(parent)
            for child in children:
                session.add(
                    Category(
                        workspace_id=tenant.workspace_id,
                        kind=kind.value,
                        name=child,
                        parent_id=parent.id,
                    )
                )
    session.add(
        Category(
            workspace_id=tenant.workspace_id,
            kind=CategoryKind.EXCHANGE.value,
            name=EXCHANGE_CATEGORY,
        )
    )
    await session.flush()


async def create_category(
    session: AsyncSession,
    tenant: Tenant,
    *,
    name: str,
    kind: str,
    parent_id: uuid.UUID | None = None,
) -> Category:
    tenant.require_write()
    name = name.strip()
    if not name or len(name) > 80:
        raise BadInput("A category name of 1 to 80 characters is required", field="name")
    chosen = _kind(kind)
    if parent_id is not None:
        parent = await LedgerRepository(session, tenant.workspace_id).category(parent_id)
        if parent is None:
            raise NotFound("Parent category not found", field="parentId")
        if parent.kind != chosen.value:
            raise BadInput("A subcategory must have its parent's kind", field="kind")
    category = Category(
        workspace_id=tenant.workspace_id, kind=chosen.value, name=name, parent_id=parent_id
    )
    session.add(category)
    await session.flush()
    return category


async def exchange_category(session: AsyncSession, tenant: Tenant) -> Category:
    category = await LedgerRepository(session, tenant.workspace_id).exchange_category()
    if category is None:
        category = Category(
            workspace_id=tenant.workspace_id,
            kind=CategoryKind.EXCHANGE.value,
            name=EXCHANGE_CATEGORY,
        )
        session.add(category)
        await session.flush()
    return category


def with_descendants(
    tree: list[tuple[uuid.UUID, uuid.UUID | None]], roots: set[uuid.UUID]
) -> set[uuid.UUID]:
    """The given categories and every category below them, from (id, parent id) pairs."""
    children: dict[uuid.UUID, list[uuid.UUID]] = {}
    for category_id, parent_id in tree:
        if parent_id is not None:
            children.setdefault(parent_id, []).append(category_id)
    found, stack = set(roots), list(roots)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found
