"""Ledger tables. Amounts and free text are AES-GCM ciphertexts (`*_enc`); ids, dates,
currencies and kinds stay in the clear so the database can filter and order by them."""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from sqlalchemy import Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from domain.core.models import timestamp_field


class AccountKind(enum.StrEnum):
    CHECKING = "checking"
    SAVINGS = "savings"
    CREDIT_CARD = "credit_card"
    CASH = "cash"
    LOAN = "loan"
    INVESTMENT = "investment"
    WALLET = "wallet"


class CategoryKind(enum.StrEnum):
    INCOME = "income"
    EXPENSE = "expense"
    # The system counter-account that balances a cross-currency transfer per currency.
    EXCHANGE = "exchange"


class TransactionKind(enum.StrEnum):
    EXPENSE = "expense"
    INCOME = "income"
    TRANSFER = "transfer"
    SPLIT = "split"


class Account(SQLModel, table=True):
    __tablename__ = "accounts"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspaces.id", index=True)
    kind: str = Field(max_length=16)
    currency: str = Field(max_length=3)
    name_enc: bytes = Field(sa_type=LargeBinary)
    number_enc: bytes | None = Field(default=None, sa_type=LargeBinary)
    institution_enc: bytes | None = Field(default=None, sa_type=LargeBinary)
    opening_balance_enc: bytes = Field(sa_type=LargeBinary)
    opening_date: dt.date
    archived: bool = False
    created_at: dt.datetime = timestamp_field()


class Category(SQLModel, table=True):
    __tablename__ = "categories"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspaces.id", index=True)
    parent_id: uuid.UUID | None = Field(default=None, foreign_key="categories.id")
    kind: str = Field(max_length=16)
    name: str = Field(max_length=80)
    created_at: dt.datetime = timestamp_field()


class Transaction(SQLModel, table=True):
    __tablename__ = "transactions"
    __table_args__ = (Index("ix_transactions_workspace_date_id", "workspace_id", "date", "id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspaces.id")
    date: dt.date
    kind: str = Field(max_length=16)
    # The account the transaction is "about" and its signed amount there (for lists/filters).
    account_id: uuid.UUID = Field(foreign_key="accounts.id")
    currency: str = Field(max_length=3)
    amount_enc: bytes = Field(sa_type=LargeBinary)
    payee_enc: bytes | None = Field(default=None, sa_type=LargeBinary)
    narration_enc: bytes | None = Field(default=None, sa_type=LargeBinary)
    notes_enc: bytes | None = Field(default=None, sa_type=LargeBinary)
    created_at: dt.datetime = timestamp_field()
    updated_at: dt.datetime = timestamp_field()


class Posting(SQLModel, table=True):
    """One leg of a transaction: on an account or on a category (the counter-account)."""

    __tablename__ = "postings"
    __table_args__ = (
        Index("ix_postings_workspace_category_date", "workspace_id", "category_id", "date"),
        Index("ix_postings_workspace_account_date", "workspace_id", "account_id", "date"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspaces.id")
    transaction_id: uuid.UUID = Field(foreign_key="transactions.id", index=True)
    account_id: uuid.UUID | None = Field(default=None, foreign_key="accounts.id")
    category_id: uuid.UUID | None = Field(default=None, foreign_key="categories.id")
    date: dt.date
    currency: str = Field(max_length=3)
    amount_enc: bytes = Field(sa_type=LargeBinary)
    memo_enc: bytes | None = Field(default=None, sa_type=LargeBinary)
    position: int = 0


class Tag(SQLModel, table=True):
    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspaces.id", index=True)
    name: str = Field(max_length=64)


class TransactionTag(SQLModel, table=True):
    __tablename__ = "transaction_tags"
    __table_args__ = (Index("ix_transaction_tags_tag", "tag_id", "transaction_id"),)

    transaction_id: uuid.UUID = Field(foreign_key="transactions.id", primary_key=True)
    tag_id: uuid.UUID = Field(foreign_key="tags.id", primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspaces.id", index=True)


class MonthTotal(SQLModel, table=True):
    """Sum of one account's or category's postings in one month and currency.

    Kept in the same database transaction as the postings, so balances and period
    summaries decrypt a few dozen totals instead of every posting.
    """

    __tablename__ = "month_totals"
    __table_args__ = (UniqueConstraint("workspace_id", "target_id", "month", "currency"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspaces.id")
    target_id: uuid.UUID  # an account id or a category id
    month: int  # yyyymm
    currency: str = Field(max_length=3)
    amount_enc: bytes = Field(sa_type=LargeBinary)
    postings: int = 0


class FxRate(SQLModel, table=True):
    """Units of `quote` for one unit of `base` on `date` (market data: not encrypted)."""

    __tablename__ = "fx_rates"
    __table_args__ = (UniqueConstraint("workspace_id", "base", "quote", "date"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspaces.id", index=True)
    base: str = Field(max_length=3)
    quote: str = Field(max_length=3)
    date: dt.date
    rate: str = Field(max_length=40)


class Budget(SQLModel, table=True):
    """A monthly spending limit on one expense category (and every subcategory below it)."""

    __tablename__ = "budgets"
    __table_args__ = (UniqueConstraint("workspace_id", "category_id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspaces.id")
    category_id: uuid.UUID = Field(foreign_key="categories.id")
    currency: str = Field(max_length=3)
    amount_enc: bytes = Field(sa_type=LargeBinary)  # monthly limit in minor units
    created_at: dt.datetime = timestamp_field()
    updated_at: dt.datetime = timestamp_field()
