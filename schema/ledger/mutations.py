"""Ledger mutations. Money-moving ones take an idempotency key (Stripe semantics)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import strawberry

from domain.ledger import accounts as accounts_service
from domain.ledger import budgets as budgets_service
from domain.ledger import categories as categories_service
from domain.ledger import fx as fx_service
from domain.ledger import transactions as tx_service
from schema.common import CanWrite
from schema.context import Info
from schema.ids import decode_id, encode_id
from schema.ledger.types import (
    Account,
    AccountKind,
    Budget,
    Category,
    CategoryKind,
    FxRate,
    Transaction,
)

IDEMPOTENCY_HELP = "Same key and input: the first result again. Same key, other input: CONFLICT."


@strawberry.input
class CreateAccountInput:
    name: str
    kind: AccountKind
    currency: str
    opening_balance: Decimal = Decimal(0)
    opening_date: dt.date | None = None
    number: str | None = None
    institution: str | None = None


@strawberry.input
class UpdateAccountInput:
    name: str | None = None
    number: str | None = None
    institution: str | None = None
    archived: bool | None = None


@strawberry.input
class CreateCategoryInput:
    name: str
    kind: CategoryKind
    parent_id: strawberry.ID | None = None


@strawberry.input
class SplitInput:
    category_id: strawberry.ID
    amount: Decimal = strawberry.field(description="Signed like the transaction's amount.")
    memo: str | None = None


@strawberry.input(description="Money in or out of one account: one category, or splits.")
class TransactionInput:
    account_id: strawberry.ID
    date: dt.date
    amount: Decimal | None = strawberry.field(
        default=None, description="Signed, in the account's currency: negative is money out."
    )
    category_id: strawberry.ID | None = None
    splits: list[SplitInput] | None = None
    payee: str | None = None
    narration: str | None = None
    notes: str | None = None
    tags: list[str] | None = None

    def to_domain(self) -> tx_service.TransactionDraft:
        return tx_service.TransactionDraft(
            account_id=decode_id(self.account_id, "Account", field="accountId"),
            date=self.date,
            amount=self.amount,
            category_id=(
                decode_id(self.category_id, "Category", field="categoryId")
                if self.category_id
                else None
            ),
            splits=tuple(
                tx_service.SplitDraft(
                    category_id=decode_id(split.category_id, "Category", field="splits"),
                    amount=split.amount,
                    memo=split.memo,
                )
                for split in self.splits or []
            ),
            payee=self.payee,
            narration=self.narration,
            notes=self.notes,
            tags=tuple(self.tags or ()),
        )


@strawberry.input(description="Between two own accounts; toAmount when the currencies differ.")
class TransferInput:
    from_account_id: strawberry.ID
    to_account_id: strawberry.ID
    date: dt.date
    amount: Decimal
    to_amount: Decimal | None = None
    payee: str | None = None
    narration: str | None = None
    notes: str | None = None
    tags: list[str] | None = None

    def to_domain(self) -> tx_service.TransferDraft:
        return tx_service.TransferDraft(
            from_account_id=decode_id(self.from_account_id, "Account", field="fromAccountId"),
            to_account_id=decode_id(self.to_account_id, "Account", field="toAccountId"),
            date=self.date,
            amount=self.amount,
            to_amount=self.to_amount,
            payee=self.payee,
            narration=self.narration,
            notes=self.notes,
            tags=tuple(self.tags or ()),
        )


@strawberry.input(description="One leg: an account or a category, and a signed amount.")
class PostingInput:
    amount: Decimal
    currency: str
    account_id: strawberry.ID | None = None
    category_id: strawberry.ID | None = None
    memo: str | None = None


@strawberry.input(description="A free-form entry whose postings balance per currency.")
class JournalEntryInput:
    date: dt.date
    postings: list[PostingInput]
    payee: str | None = None
    narration: str | None = None
    notes: str | None = None
    tags: list[str] | None = None

    def to_domain(self) -> tx_service.JournalDraft:
        return tx_service.JournalDraft(
            date=self.date,
            postings=tuple(
                tx_service.PostingDraft(
                    amount=p.amount,
                    currency=p.currency,
                    account_id=decode_id(p.account_id, "Account", field="postings")
                    if p.account_id
                    else None,
                    category_id=decode_id(p.category_id, "Category", field="postings")
                    if p.category_id
                    else None,
                    memo=p.memo,
                )
                for p in self.postings
            ),
            payee=self.payee,
            narration=self.narration,
            notes=self.notes,
            tags=tuple(self.tags or ()),
        )


@strawberry.type
class DeletedTransaction:
    id: strawberry.ID


async def _post(
    info: Info,
    draft: tx_service.TransactionDraft | tx_service.TransferDraft | tx_service.JournalDraft,
    key: str,
) -> Transaction:
    tenant = await info.context.tenant()
    async with info.context.db() as session:
        view = await tx_service.post(session, tenant, draft, idempotency_key=key)
    return Transaction.of(view)


async def _edit(
    info: Info,
    id: strawberry.ID,
    draft: tx_service.TransactionDraft | tx_service.TransferDraft | tx_service.JournalDraft,
    key: str,
) -> Transaction:
    tenant = await info.context.tenant()
    transaction_id = decode_id(id, "Transaction")
    async with info.context.db() as session:
        view = await tx_service.edit(session, tenant, transaction_id, draft, idempotency_key=key)
    return Transaction.of(view)


@strawberry.type
class LedgerMutation:
    @strawberry.mutation(permission_classes=[CanWrite])
    async def create_account(self, info: Info, input: CreateAccountInput) -> Account:
        tenant = await info.context.tenant()
        async with info.context.db() as session:
            view = await accounts_service.create_account(
                session,
                tenant,
                name=input.name,
                kind=input.kind.value,
                currency=input.currency,
                opening_balance=input.opening_balance,
                opening_date=input.opening_date,
                number=input.number,
                institution=input.institution,
            )
        return Account.of(view)

    @strawberry.mutation(permission_classes=[CanWrite])
    async def update_account(
        self, info: Info, id: strawberry.ID, input: UpdateAccountInput
    ) -> Account:
        tenant = await info.context.tenant()
        account_id = decode_id(id, "Account")
        async with info.context.db() as session:
            view = await accounts_service.update_account(
                session,
                tenant,
                account_id,
                name=input.name,
                number=input.number,
                institution=input.institution,
                archived=input.archived,
            )
        return Account.of(view)

    @strawberry.mutation(permission_classes=[CanWrite])
    async def create_category(self, info: Info, input: CreateCategoryInput) -> Category:
        tenant = await info.context.tenant()
        parent = (
            decode_id(input.parent_id, "Category", field="parentId") if input.parent_id else None
        )
        async with info.context.db() as session:
            row = await categories_service.create_category(
                session, tenant, name=input.name, kind=input.kind.value, parent_id=parent
            )
        return Category.of(row)

    @strawberry.mutation(permission_classes=[CanWrite], description=IDEMPOTENCY_HELP)
    async def post_transaction(
        self, info: Info, input: TransactionInput, idempotency_key: str
    ) -> Transaction:
        return await _post(info, input.to_domain(), idempotency_key)

    @strawberry.mutation(permission_classes=[CanWrite], description=IDEMPOTENCY_HELP)
    async def transfer(self, info: Info, input: TransferInput, idempotency_key: str) -> Transaction:
        return await _post(info, input.to_domain(), idempotency_key)

    @strawberry.mutation(permission_classes=[CanWrite], description=IDEMPOTENCY_HELP)
    async def post_journal_entry(
        self, info: Info, input: JournalEntryInput, idempotency_key: str
    ) -> Transaction:
        return await _post(info, input.to_domain(), idempotency_key)

    @strawberry.mutation(permission_classes=[CanWrite], description=IDEMPOTENCY_HELP)
    async def edit_transaction(
        self, info: Info, id: strawberry.ID, input: TransactionInput, idempotency_key: str
    ) -> Transaction:
        return await _edit(info, id, input.to_domain(), idempotency_key)

    @strawberry.mutation(permission_classes=[CanWrite], description=IDEMPOTENCY_HELP)
    async def edit_transfer(
        self, info: Info, id: strawberry.ID, input: TransferInput, idempotency_key: str
    ) -> Transaction:
        return await _edit(info, id, input.to_domain(), idempotency_key)

    @strawberry.mutation(permission_classes=[CanWrite], description=IDEMPOTENCY_HELP)
    async def edit_journal_entry(
        self, info: Info, id: strawberry.ID, input: JournalEntryInput, idempotency_key: str
    ) -> Transaction:
        return await _edit(info, id, input.to_domain(), idempotency_key)

    @strawberry.mutation(permission_classes=[CanWrite], description=IDEMPOTENCY_HELP)
    async def delete_transaction(
        self, info: Info, id: strawberry.ID, idempotency_key: str
    ) -> DeletedTransaction:
        tenant = await info.context.tenant()
        transaction_id = decode_id(id, "Transaction")
        async with info.context.db() as session:
            deleted = await tx_service.remove(
                session, tenant, transaction_id, idempotency_key=idempotency_key
            )
        return DeletedTransaction(id=strawberry.ID(encode_id("Transaction", deleted)))

    @strawberry.mutation(permission_classes=[CanWrite])
    async def set_fx_rate(
        self, info: Info, base: str, quote: str, date: dt.date, rate: str
    ) -> FxRate:
        tenant = await info.context.tenant()
        async with info.context.db() as session:
            row = await fx_service.set_rate(
                session, tenant, base=base, quote=quote, on=date, rate=rate
            )
        return FxRate(base=row.base, quote=row.quote, date=row.date, rate=row.rate)

    @strawberry.mutation(
        permission_classes=[CanWrite],
        description="Set (or replace) an expense category's monthly budget, in the base currency.",
    )
    async def set_budget(self, info: Info, category_id: strawberry.ID, amount: Decimal) -> Budget:
        tenant = await info.context.tenant()
        category = decode_id(category_id, "Category", field="categoryId")
        async with info.context.db() as session:
            view = await budgets_service.set_budget(session, tenant, category, amount)
        return Budget.of(view)

    @strawberry.mutation(
        permission_classes=[CanWrite],
        description="Remove a category's budget; false when it had none.",
    )
    async def remove_budget(self, info: Info, category_id: strawberry.ID) -> bool:
        tenant = await info.context.tenant()
        category = decode_id(category_id, "Category", field="categoryId")
        async with info.context.db() as session:
            return await budgets_service.remove_budget(session, tenant, category)
