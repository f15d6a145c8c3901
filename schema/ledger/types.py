"""GraphQL types of the ledger."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from enum import Enum
from typing import Any

import strawberry
from strawberry import relay

from domain.core.errors import NotFound
from domain.ledger import accounts as accounts_service
from domain.ledger import budgets as budgets_service
from domain.ledger import reports
from domain.ledger import transactions as tx_service
from domain.ledger.models import Category as CategoryRow
from domain.ledger.models import Tag as TagRow
from schema.common import Money, PeriodRange
from schema.context import Info


@strawberry.enum
class AccountKind(Enum):
    CHECKING = "checking"
    SAVINGS = "savings"
    CREDIT_CARD = "credit_card"
    CASH = "cash"
    LOAN = "loan"
    INVESTMENT = "investment"
    WALLET = "wallet"


@strawberry.enum
class CategoryKind(Enum):
    INCOME = "income"
    EXPENSE = "expense"
    EXCHANGE = "exchange"


@strawberry.enum
class TransactionKind(Enum):
    EXPENSE = "expense"
    INCOME = "income"
    TRANSFER = "transfer"
    SPLIT = "split"


@strawberry.enum
class SummaryGroupBy(Enum):
    CATEGORY = "category"
    MONTH = "month"
    PAYEE = "payee"


async def _uuid_nodes(node_ids: Iterable[str]) -> list[uuid.UUID | None]:
    found: list[uuid.UUID | None] = []
    for node_id in node_ids:
        try:
            found.append(uuid.UUID(node_id))
        except ValueError:
            found.append(None)
    return found


async def _load_nodes(loader: Any, node_ids: Iterable[str]) -> list[Any]:
    ids = await _uuid_nodes(node_ids)
    rows = await loader.load_many([i for i in ids if i is not None])
    by_id = {row.id: row for row in rows if row is not None}
    return [by_id.get(i) if i else None for i in ids]


@strawberry.type
class Account(relay.Node):
    id: relay.NodeID[str]
    name: str
    kind: AccountKind
    currency: str
    number: str | None = strawberry.field(
        description="The full account number (encrypted at rest)."
    )
    institution: str | None
    opening_balance: Money
    opening_date: dt.date
    archived: bool

    @classmethod
    def of(cls, view: accounts_service.AccountView) -> Account:
        return cls(
            id=view.id.hex,
            name=view.name,
            kind=AccountKind(view.kind.value),
            currency=view.currency,
            number=view.number,
            institution=view.institution,
            opening_balance=Money.of(view.opening_balance),
            opening_date=view.opening_date,
            archived=view.archived,
        )

    @strawberry.field(description="Opening balance plus every posting on the account.")
    async def balance(self, info: Info) -> Money:
        money = await info.context.loaders.balance.load(uuid.UUID(self.id))
        assert money is not None
        return Money.of(money)

    @strawberry.field(description="The number with all but the last four characters hidden.")
    def masked_number(self) -> str | None:
        if self.number is None:
            return None
        return "•" * max(len(self.number) - 4, 0) + self.number[-4:]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Account | None]:
        tenant = await info.context.tenant()
        rows = await _load_nodes(info.context.loaders.account, node_ids)
        return [cls.of(accounts_service.view(tenant, row)) if row else None for row in rows]


@strawberry.type
class Category(relay.Node):
    id: relay.NodeID[str]
    name: str
    kind: CategoryKind
    parent_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def of(cls, row: CategoryRow) -> Category:
        return cls(
            id=row.id.hex, name=row.name, kind=CategoryKind(row.kind), parent_id=row.parent_id
        )

    @strawberry.field
    async def parent(self, info: Info) -> Category | None:
        if self.parent_id is None:
            return None
        row = await info.context.loaders.category.load(self.parent_id)
        return Category.of(row) if row else None

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Category | None]:
        await info.context.tenant()
        rows = await _load_nodes(info.context.loaders.category, node_ids)
        return [cls.of(row) if row else None for row in rows]


@strawberry.type
class Tag(relay.Node):
    id: relay.NodeID[str]
    name: str

    @classmethod
    def of(cls, row: TagRow) -> Tag:
        return cls(id=row.id.hex, name=row.name)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Tag | None]:
        from domain.ledger.repository import LedgerRepository

        tenant = await info.context.tenant()
        ids = await _uuid_nodes(node_ids)
        async with info.context.db() as session:
            rows = await LedgerRepository(session, tenant.workspace_id).tags_by_ids(
                [i for i in ids if i]
            )
        by_id = {row.id: row for row in rows}
        return [cls.of(by_id[i]) if i in by_id else None for i in ids]


@strawberry.type
class Posting:
    amount: Money
    memo: str | None
    account_id: strawberry.Private[uuid.UUID | None]
    category_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field
    async def account(self, info: Info) -> Account | None:
        if self.account_id is None:
            return None
        row = await info.context.loaders.account.load(self.account_id)
        tenant = await info.context.tenant()
        return Account.of(accounts_service.view(tenant, row)) if row else None

    @strawberry.field
    async def category(self, info: Info) -> Category | None:
        if self.category_id is None:
            return None
        row = await info.context.loaders.category.load(self.category_id)
        if row is None:  # a budget's category is a foreign key: only a race gets here
            raise NotFound("Category not found", field="categoryId")
        return Category.of(row) if row else None


@strawberry.type
class Transaction(relay.Node):
    id: relay.NodeID[str]
    date: dt.date
    kind: TransactionKind
    amount: Money = strawberry.field(
        description="Signed amount on the transaction's account: negative is money out."
    )
    payee: str | None
    narration: str | None
    notes: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    account_id: strawberry.Private[uuid.UUID]

    @classmethod
    def of(cls, view: tx_service.TransactionView) -> Transaction:
        return cls(
            id=view.id.hex,
            date=view.date,
            kind=TransactionKind(view.kind.value),
            amount=Money.of(view.amount),
            payee=view.payee,
            narration=view.narration,
            notes=view.notes,
            created_at=view.created_at,
            updated_at=view.updated_at,
            account_id=view.account_id,
        )

    @strawberry.field
    async def account(self, info: Info) -> Account:
        row = await info.context.loaders.account.load(self.account_id)
        tenant = await info.context.tenant()
        assert row is not None
        return Account.of(accounts_service.view(tenant, row))

    @strawberry.field(description="The balanced legs: per currency they sum to zero.")
    async def postings(self, info: Info) -> list[Posting]:
        views = await info.context.loaders.postings.load(uuid.UUID(self.id))
        return [
            Posting(
                amount=Money.of(v.amount),
                memo=v.memo,
                account_id=v.account_id,
                category_id=v.category_id,
            )
            for v in views
        ]

    @strawberry.field(description="The first category posting's category (splits have several).")
    async def category(self, info: Info) -> Category | None:
        views = await info.context.loaders.postings.load(uuid.UUID(self.id))
        category_id = next((v.category_id for v in views if v.category_id), None)
        if category_id is None:
            return None
        row = await info.context.loaders.category.load(category_id)
        return Category.of(row) if row else None

    @strawberry.field
    async def tags(self, info: Info) -> list[Tag]:
        return [Tag.of(row) for row in await info.context.loaders.tags.load(uuid.UUID(self.id))]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Transaction | None]:
        from domain.ledger.repository import LedgerRepository
        from schema.audit import record_read

        tenant = await info.context.tenant()
        ids = [i for i in await _uuid_nodes(node_ids)]
        async with info.context.db() as session:
            rows = await LedgerRepository(session, tenant.workspace_id).transactions_by_ids(
                [i for i in ids if i]
            )
        by_id = {row.id: row for row in rows}
        record_read(info, tenant, by_id)
        return [cls.of(tx_service.view(tenant, by_id[i])) if i in by_id else None for i in ids]


@strawberry.type
class TransactionEdge:
    cursor: str
    node: Transaction


@strawberry.type
class TransactionConnection:
    edges: list[TransactionEdge]
    page_info: relay.PageInfo


@strawberry.type
class SummaryRow:
    key: str
    label: str
    amount: Money
    posting_count: int
    category_id: strawberry.Private[uuid.UUID | None]
    month: str | None

    @classmethod
    def of(cls, row: reports.SummaryRow) -> SummaryRow:
        return cls(
            key=row.key,
            label=row.label,
            amount=Money.of(row.amount),
            posting_count=row.postings,
            category_id=row.category_id,
            month=None if row.month is None else f"{row.month // 100}-{row.month % 100:02d}",
        )

    @strawberry.field
    async def category(self, info: Info) -> Category | None:
        if self.category_id is None:
            return None
        row = await info.context.loaders.category.load(self.category_id)
        if row is None:  # a budget's category is a foreign key: only a race gets here
            raise NotFound("Category not found", field="categoryId")
        return Category.of(row) if row else None


@strawberry.type
class SpendingSummary:
    period: PeriodRange
    group_by: SummaryGroupBy
    total: Money
    rows: list[SummaryRow]
    unconverted: list[Money] = strawberry.field(
        description="Amounts left out of the totals for want of an FX rate to the base currency."
    )


@strawberry.type
class CashflowMonth:
    month: str
    income: Money
    expenses: Money
    net: Money


@strawberry.type
class Cashflow:
    period: PeriodRange
    income: Money
    expenses: Money
    net: Money
    savings_rate: str | None = strawberry.field(
        description="Net over income, as a decimal fraction (null without income)."
    )
    months: list[CashflowMonth]
    unconverted: list[Money]


@strawberry.type
class NetWorthPoint:
    month: str
    assets: Money
    liabilities: Money
    net: Money


@strawberry.type
class NetWorth:
    assets: Money
    liabilities: Money
    net: Money
    history: list[NetWorthPoint]
    unconverted: list[Money]


@strawberry.type
class FxRate:
    base: str
    quote: str
    date: dt.date
    rate: str


def month_label(month: int) -> str:
    return f"{month // 100}-{month % 100:02d}"


@strawberry.type(
    description="A monthly spending limit on an expense category and its subcategories."
)
class Budget:
    amount: Money = strawberry.field(description="Per month, in the workspace's base currency.")
    updated_at: dt.datetime
    category_id: strawberry.Private[uuid.UUID]

    @classmethod
    def of(cls, view: budgets_service.BudgetView) -> Budget:
        return cls(
            amount=Money.of(view.amount), updated_at=view.updated_at, category_id=view.category_id
        )

    @strawberry.field
    async def category(self, info: Info) -> Category:
        row = await info.context.loaders.category.load(self.category_id)
        if row is None:  # a budget's category is a foreign key: only a race gets here
            raise NotFound("Category not found", field="categoryId")
        return Category.of(row)
