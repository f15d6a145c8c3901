"""Ledger queries."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import strawberry
from strawberry import relay

from domain.ledger import accounts as accounts_service
from domain.ledger import budgets as budgets_service
from domain.ledger import reports
from domain.ledger import transactions as tx_service
from domain.ledger.repository import LedgerRepository
from schema.audit import record_read
from schema.common import CanRead, Money, PeriodInput, PeriodRange
from schema.context import Info
from schema.ids import decode_id, decode_ids
from schema.ledger.types import (
    Account,
    Budget,
    Cashflow,
    CashflowMonth,
    Category,
    FxRate,
    NetWorth,
    NetWorthPoint,
    SpendingSummary,
    SummaryGroupBy,
    SummaryRow,
    Tag,
    Transaction,
    TransactionConnection,
    TransactionEdge,
    month_label,
)
from schema.pagination import check_first, decode_cursor, encode_cursor


@strawberry.input
class TransactionFilter:
    account_ids: list[strawberry.ID] | None = None
    category_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Matches these categories and every subcategory."
    )
    tag_ids: list[strawberry.ID] | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    amount_min: Decimal | None = strawberry.field(
        default=None, description="Lower bound on the absolute amount."
    )
    amount_max: Decimal | None = None
    text: str | None = strawberry.field(
        default=None, description="Case-insensitive match in payee, narration or notes."
    )

    def to_domain(self) -> tx_service.TransactionFilter:
        return tx_service.TransactionFilter(
            account_ids=decode_ids(self.account_ids, "Account", field="accountIds"),
            category_ids=decode_ids(self.category_ids, "Category", field="categoryIds"),
            tag_ids=decode_ids(self.tag_ids, "Tag", field="tagIds"),
            date_from=self.date_from,
            date_to=self.date_to,
            amount_min=self.amount_min,
            amount_max=self.amount_max,
            text=self.text or None,
        )


def _range(period: reports.Period) -> PeriodRange:
    return PeriodRange(start=period.start, end=period.end)


@strawberry.type
class LedgerQuery:
    @strawberry.field(permission_classes=[CanRead])
    async def accounts(self, info: Info, include_archived: bool = False) -> list[Account]:
        tenant = await info.context.tenant()
        async with info.context.db() as session:
            rows = await LedgerRepository(session, tenant.workspace_id).accounts(
                include_archived=include_archived
            )
        for row in rows:
            info.context.loaders.account.prime(row.id, row)
        return [Account.of(accounts_service.view(tenant, row)) for row in rows]

    @strawberry.field(permission_classes=[CanRead])
    async def account(self, info: Info, id: strawberry.ID) -> Account:
        tenant = await info.context.tenant()
        account_id = decode_id(id, "Account")
        async with info.context.db() as session:
            row = await accounts_service.get_account(session, tenant, account_id)
        return Account.of(accounts_service.view(tenant, row))

    @strawberry.field(permission_classes=[CanRead])
    async def categories(self, info: Info) -> list[Category]:
        tenant = await info.context.tenant()
        async with info.context.db() as session:
            rows = await LedgerRepository(session, tenant.workspace_id).categories()
        for row in rows:
            info.context.loaders.category.prime(row.id, row)
        return [Category.of(row) for row in rows]

    @strawberry.field(permission_classes=[CanRead])
    async def tags(self, info: Info) -> list[Tag]:
        tenant = await info.context.tenant()
        async with info.context.db() as session:
            rows = await LedgerRepository(session, tenant.workspace_id).tags()
        return [Tag.of(row) for row in rows]

    @strawberry.field(permission_classes=[CanRead])
    async def transaction(self, info: Info, id: strawberry.ID) -> Transaction:
        tenant = await info.context.tenant()
        transaction_id = decode_id(id, "Transaction")
        async with info.context.db() as session:
            found = await tx_service.get_transaction(session, tenant, transaction_id)
        record_read(info, tenant, [found.id])
        return Transaction.of(found)

    @strawberry.field(
        permission_classes=[CanRead],
        description="Newest first; keyset pagination (`first` at most 100, `after` a cursor).",
    )
    async def transactions(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: TransactionFilter | None = None,
    ) -> TransactionConnection:
        tenant = await info.context.tenant()
        limit = check_first(first)
        key = await info.context.cursor_key()
        position = decode_cursor(key, tenant.workspace_id, after) if after else None
        flt = filter.to_domain() if filter else tx_service.TransactionFilter()
        async with info.context.db() as session:
            page = await tx_service.list_transactions(
                session, tenant, flt, first=limit, after=position
            )
        record_read(info, tenant, [item.id for item in page.items])
        edges = [
            TransactionEdge(
                cursor=encode_cursor(key, tenant.workspace_id, (item.date, item.id)),
                node=Transaction.of(item),
            )
            for item in page.items
        ]
        return TransactionConnection(
            edges=edges,
            page_info=relay.PageInfo(
                has_next_page=page.has_next_page,
                has_previous_page=after is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )

    @strawberry.field(permission_classes=[CanRead])
    async def spending_summary(
        self, info: Info, period: PeriodInput, group_by: SummaryGroupBy = SummaryGroupBy.CATEGORY
    ) -> SpendingSummary:
        tenant = await info.context.tenant()
        async with info.context.db() as session:
            summary = await reports.spending_summary(
                session, tenant, period.to_domain(), reports.GroupBy(group_by.value)
            )
        return SpendingSummary(
            period=_range(summary.period),
            group_by=group_by,
            total=Money.of(summary.total),
            rows=[SummaryRow.of(row) for row in summary.rows],
            unconverted=[Money.of(m) for m in summary.unconverted],
        )

    @strawberry.field(permission_classes=[CanRead])
    async def cashflow(self, info: Info, period: PeriodInput) -> Cashflow:
        tenant = await info.context.tenant()
        async with info.context.db() as session:
            flow = await reports.cashflow(session, tenant, period.to_domain())
        rate = None
        if flow.income.minor > 0:
            rate = str(
                (Decimal(flow.net.minor) / Decimal(flow.income.minor)).quantize(Decimal("0.0001"))
            )
        return Cashflow(
            period=_range(flow.period),
            income=Money.of(flow.income),
            expenses=Money.of(flow.expenses),
            net=Money.of(flow.net),
            savings_rate=rate,
            months=[
                CashflowMonth(
                    month=month_label(m.month),
                    income=Money.of(m.income),
                    expenses=Money.of(m.expenses),
                    net=Money.of(m.net),
                )
                for m in flow.months
            ],
            unconverted=[Money.of(m) for m in flow.unconverted],
        )

    @strawberry.field(permission_classes=[CanRead])
    async def net_worth(self, info: Info, months: int = 12) -> NetWorth:
        tenant = await info.context.tenant()
        async with info.context.db() as session:
            worth = await reports.net_worth(session, tenant, months=months)
        return NetWorth(
            assets=Money.of(worth.assets),
            liabilities=Money.of(worth.liabilities),
            net=Money.of(worth.net),
            history=[
                NetWorthPoint(
                    month=month_label(p.month),
                    assets=Money.of(p.assets),
                    liabilities=Money.of(p.liabilities),
                    net=Money.of(p.net),
                )
                for p in worth.history
            ],
            unconverted=[Money.of(m) for m in worth.unconverted],
        )

    @strawberry.field(permission_classes=[CanRead])
    async def fx_rates(self, info: Info) -> list[FxRate]:
        tenant = await info.context.tenant()
        async with info.context.db() as session:
            rows = await LedgerRepository(session, tenant.workspace_id).all_fx_rates()
        return [FxRate(base=r.base, quote=r.quote, date=r.date, rate=r.rate) for r in rows]

    @strawberry.field(permission_classes=[CanRead], description="Monthly budgets by category.")
    async def budgets(self, info: Info) -> list[Budget]:
        tenant = await info.context.tenant()
        async with info.context.db() as session:
            views = await budgets_service.list_budgets(session, tenant)
        return [Budget.of(view) for view in views]
