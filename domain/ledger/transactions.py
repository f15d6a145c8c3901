"""Transactions as balanced postings: post, transfer, split, edit and delete.

Every write validates that the postings of each currency sum to zero, keeps the month
totals (and so every balance) exact in the same database transaction, and is
idempotent under a client-chosen key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.core.errors import BadInput, Conflict, NotFound
from domain.core.models import IdempotencyRecord, utcnow
from domain.core.money import Money
from domain.core.tenancy import Tenant
from domain.ledger import categories, totals
from domain.ledger.fx import load_table
from domain.ledger.models import (
    Account,
    Category,
    CategoryKind,
    Posting,
    Tag,
    Transaction,
    TransactionKind,
    TransactionTag,
)
from domain.ledger.repository import LedgerRepository
from domain.realtime import outbox
from domain.realtime.events import EventType

TX_TABLE = "transactions"
POSTING_TABLE = "postings"
MAX_TEXT = 500
MAX_TAGS = 20
MAX_POSTINGS = 50


@dataclass(frozen=True)
class SplitDraft:
    category_id: uuid.UUID
    amount: Decimal
    memo: str | None = None


@dataclass(frozen=True)
class TransactionDraft:
    """Money in or out of one account, against one category or split across several.

    `amount` is signed from the account's side: negative is money out.
    """

    account_id: uuid.UUID
    date: dt.date
    amount: Decimal | None = None
    category_id: uuid.UUID | None = None
    splits: tuple[SplitDraft, ...] = ()
    payee: str | None = None
    narration: str | None = None
    notes: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class TransferDraft:
    """Between two own accounts; `to_amount` is what arrives when the currencies differ."""

    from_account_id: uuid.UUID
    to_account_id: uuid.UUID
    date: dt.date
    amount: Decimal
    to_amount: Decimal | None = None
    payee: str | None = None
    narration: str | None = None
    notes: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class PostingDraft:
    amount: Decimal
    currency: str
    account_id: uuid.UUID | None = None
    category_id: uuid.UUID | None = None
    memo: str | None = None


@dataclass(frozen=True)
class JournalDraft:
    """A free-form entry: any postings, which must balance per currency."""

    date: dt.date
    postings: tuple[PostingDraft, ...]
    payee: str | None = None
    narration: str | None = None
    notes: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Leg:
    money: Money
    account_id: uuid.UUID | None = None
    category_id: uuid.UUID | None = None
    memo: str | None = None


@dataclass(frozen=True)
class _Entry:
    date: dt.date
    legs: tuple[_Leg, ...]
    payee: str | None
    narration: str | None
    notes: str | None
    tags: tuple[str, ...]
    kind: TransactionKind | None = None


@dataclass(frozen=True)
class PostingView:
    id: uuid.UUID
    transaction_id: uuid.UUID
    account_id: uuid.UUID | None
    category_id: uuid.UUID | None
    amount: Money
    memo: str | None


@dataclass(frozen=True)
class TransactionView:
    id: uuid.UUID
    date: dt.date
    kind: TransactionKind
    account_id: uuid.UUID
    amount: Money
    payee: str | None
    narration: str | None
    notes: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class TransactionFilter:
    account_ids: tuple[uuid.UUID, ...] = ()
    category_ids: tuple[uuid.UUID, ...] = ()
    tag_ids: tuple[uuid.UUID, ...] = ()
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    # Bounds on the absolute amount, in each transaction's own currency.
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    text: str | None = None


@dataclass
class TransactionPage:
    items: list[TransactionView] = field(default_factory=list)
    has_next_page: bool = False


# --- views -----------------------------------------------------------------------------


def view(tenant: Tenant, row: Transaction) -> TransactionView:
    cipher = tenant.cipher
    return TransactionView(
        id=row.id,
        date=row.date,
        kind=TransactionKind(row.kind),
        account_id=row.account_id,
        amount=Money(cipher.open_int(row.amount_enc, TX_TABLE, "amount", row.id), row.currency),
        payee=cipher.open_optional(row.payee_enc, TX_TABLE, "payee", row.id),
        narration=cipher.open_optional(row.narration_enc, TX_TABLE, "narration", row.id),
        notes=cipher.open_optional(row.notes_enc, TX_TABLE, "notes", row.id),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def posting_view(tenant: Tenant, row: Posting) -> PostingView:
    cipher = tenant.cipher
    return PostingView(
        id=row.id,
        transaction_id=row.transaction_id,
        account_id=row.account_id,
        category_id=row.category_id,
        amount=Money(
            cipher.open_int(row.amount_enc, POSTING_TABLE, "amount", row.id), row.currency
        ),
        memo=cipher.open_optional(row.memo_enc, POSTING_TABLE, "memo", row.id),
    )


async def get_transaction(
    session: AsyncSession, tenant: Tenant, transaction_id: uuid.UUID
) -> TransactionView:
    row = await LedgerRepository(session, tenant.workspace_id).transaction(transaction_id)
    if row is None:
        raise NotFound("Transaction not found", field="id")
    return view(tenant, row)


async def postings_of(
    session: AsyncSession, tenant: Tenant, transaction_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[PostingView]]:
    grouped: dict[uuid.UUID, list[PostingView]] = defaultdict(list)
    rows = await LedgerRepository(session, tenant.workspace_id).postings_of(transaction_ids)
    for row in rows:
        grouped[row.transaction_id].append(posting_view(tenant, row))
    return grouped


# --- validation --------------------------------------------------------------------------


def _text(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise BadInput(f"{name} is longer than {MAX_TEXT} characters", field=name)
    return value or None


def _tags(names: Sequence[str]) -> tuple[str, ...]:
    cleaned = sorted({name.strip().lower() for name in names if name.strip()})
    if len(cleaned) > MAX_TAGS or any(len(name) > 64 for name in cleaned):
        raise BadInput(f"At most {MAX_TAGS} tags of up to 64 characters", field="tags")
    return tuple(cleaned)


def _check_balanced(legs: Sequence[_Leg]) -> None:
    sums: dict[str, int] = defaultdict(int)
    for leg in legs:
        sums[leg.money.currency] += leg.money.minor
    unbalanced = {currency: total for currency, total in sums.items() if total}
    if unbalanced:
        detail = ", ".join(
            f"{Money(total, currency)}" for currency, total in sorted(unbalanced.items())
        )
        raise BadInput(f"Postings do not balance: off by {detail}", field="postings")


async def _references(
    session: AsyncSession, tenant: Tenant, legs: Sequence[_Leg]
) -> tuple[dict[uuid.UUID, Account], dict[uuid.UUID, Category]]:
    repository = LedgerRepository(session, tenant.workspace_id)
    account_ids = {leg.account_id for leg in legs if leg.account_id}
    category_ids = {leg.category_id for leg in legs if leg.category_id}
    accounts = {a.id: a for a in await repository.accounts_by_ids(account_ids)}
    found = {c.id: c for c in await repository.categories_by_ids(category_ids)}
    if account_ids - accounts.keys():
        raise NotFound("Account not found", field="accountId")
    if category_ids - found.keys():
        raise NotFound("Category not found", field="categoryId")
    _check_accounts(legs, accounts)
    return accounts, found


def _check_accounts(legs: Sequence[_Leg], accounts: dict[uuid.UUID, Account]) -> None:
    """Every account leg names a known, open account, in that account's currency."""
    for leg in legs:
        if leg.account_id is None:
            continue
        account = accounts.get(leg.account_id)
        if account is None:
            raise NotFound("Account not found", field="accountId")
        if account.archived:
            raise BadInput("The account is archived", field="accountId")
        if account.currency != leg.money.currency:
            raise BadInput(
                f"The account holds {account.currency}, not {leg.money.currency}",
                field="currency",
            )


def _kind_of(entry: _Entry, found: dict[uuid.UUID, Category]) -> TransactionKind:
    if entry.kind is not None:
        return entry.kind
    category_legs = [leg for leg in entry.legs if leg.category_id]
    kinds = {found[leg.category_id].kind for leg in category_legs if leg.category_id}
    if CategoryKind.EXCHANGE.value in kinds or not category_legs:
        return TransactionKind.TRANSFER
    if len(category_legs) > 1:
        return TransactionKind.SPLIT
    return TransactionKind.INCOME if kinds == {"income"} else TransactionKind.EXPENSE


def _entry_from_draft(draft: TransactionDraft, account: Account) -> _Entry:
    currency = account.currency
    if draft.category_id is not None and draft.splits:
        raise BadInput("Give either a category or splits, not both", field="splits")
    if draft.category_id is not None:
        if draft.amount is None:
            raise BadInput("An amount is required", field="amount")
        money = Money.parse(draft.amount, currency)
        counter = [_Leg(-money, category_id=draft.category_id)]
    elif draft.splits:
        counter = [
            _Leg(
                -Money.parse(split.amount, currency, field="splits"),
                category_id=split.category_id,
                memo=_text(split.memo, "memo"),
            )
            for split in draft.splits
        ]
        money = Money(-sum(leg.money.minor for leg in counter), currency)
        if draft.amount is not None and Money.parse(draft.amount, currency) != money:
            raise BadInput("The splits do not add up to the amount", field="splits")
    else:
        raise BadInput("A category or splits are required", field="categoryId")
    if money.minor == 0:
        raise BadInput("The amount must not be zero", field="amount")
    if any(leg.money.minor == 0 for leg in counter):
        raise BadInput("A split amount must not be zero", field="splits")
    return _Entry(
        date=draft.date,
        legs=(_Leg(money, account_id=account.id), *counter),
        payee=_text(draft.payee, "payee"),
        narration=_text(draft.narration, "narration"),
        notes=_text(draft.notes, "notes"),
        tags=_tags(draft.tags),
        kind=TransactionKind.SPLIT if len(counter) > 1 else None,
    )


async def _entry_from_transfer(
    session: AsyncSession,
    tenant: Tenant,
    draft: TransferDraft,
    known: dict[uuid.UUID, Account] | None = None,
) -> _Entry:
    if draft.from_account_id == draft.to_account_id:
        raise BadInput("A transfer needs two different accounts", field="toAccountId")
    accounts = known
    if accounts is None:
        repository = LedgerRepository(session, tenant.workspace_id)
        pair = [draft.from_account_id, draft.to_account_id]
        accounts = {a.id: a for a in await repository.accounts_by_ids(pair)}
    source, target = accounts.get(draft.from_account_id), accounts.get(draft.to_account_id)
    if source is None or target is None:
        raise NotFound("Account not found", field="accountId")
    sent = Money.parse(draft.amount, source.currency)
    if sent.minor <= 0:
        raise BadInput("A transfer amount must be positive", field="amount")
    legs = [_Leg(-sent, account_id=source.id)]
    if source.currency == target.currency:
        if draft.to_amount is not None and Money.parse(draft.to_amount, target.currency) != sent:
            raise BadInput("Same-currency transfers move one amount", field="toAmount")
        legs.append(_Leg(sent, account_id=target.id))
    else:
        if draft.to_amount is not None:
            received = Money.parse(draft.to_amount, target.currency, field="toAmount")
        else:
            converted = (await load_table(session, tenant)).convert(
                sent.minor, source.currency, target.currency, draft.date
            )
            if converted is None:
                raise BadInput(
                    f"No {source.currency}/{target.currency} rate: give toAmount", field="toAmount"
                )
            received = Money(converted, target.currency)
        if received.minor <= 0:
            raise BadInput("The received amount must be positive", field="toAmount")
        exchange = await categories.exchange_category(session, tenant)
        legs += [
            _Leg(received, account_id=target.id),
            _Leg(sent, category_id=exchange.id),
            _Leg(-received, category_id=exchange.id),
        ]
    return _Entry(
        date=draft.date,
        legs=tuple(legs),
        payee=_text(draft.payee, "payee"),
        narration=_text(draft.narration, "narration"),
        notes=_text(draft.notes, "notes"),
        tags=_tags(draft.tags),
        kind=TransactionKind.TRANSFER,
    )


def _entry_from_journal(draft: JournalDraft) -> _Entry:
    if not 2 <= len(draft.postings) <= MAX_POSTINGS:
        raise BadInput(f"An entry has 2 to {MAX_POSTINGS} postings", field="postings")
    legs = []
    for posting in draft.postings:
        if (posting.account_id is None) == (posting.category_id is None):
            raise BadInput("Each posting names an account or a category", field="postings")
        money = Money.parse(posting.amount, posting.currency, field="postings")
        if money.minor == 0:
            raise BadInput("A posting amount must not be zero", field="postings")
        legs.append(
            _Leg(money, posting.account_id, posting.category_id, _text(posting.memo, "memo"))
        )
    if not any(leg.account_id for leg in legs):
        raise BadInput("An entry needs at least one account posting", field="postings")
    return _Entry(
        date=draft.date,
        legs=tuple(legs),
        payee=_text(draft.payee, "payee"),
        narration=_text(draft.narration, "narration"),
        notes=_text(draft.notes, "notes"),
        tags=_tags(draft.tags),
    )


async def _entry(
    session: AsyncSession, tenant: Tenant, draft: TransactionDraft | TransferDraft | JournalDraft
) -> _Entry:
    if isinstance(draft, TransferDraft):
        return await _entry_from_transfer(session, tenant, draft)
    if isinstance(draft, JournalDraft):
        return _entry_from_journal(draft)
    account = await LedgerRepository(session, tenant.workspace_id).account(draft.account_id)
    if account is None:
        raise NotFound("Account not found", field="accountId")
    return _entry_from_draft(draft, account)


# --- writing ---------------------------------------------------------------------------


async def _write_postings(
    session: AsyncSession,
    tenant: Tenant,
    row: Transaction,
    entry: _Entry,
    change: totals.TotalsChange,
) -> None:
    rows = _posting_rows(tenant, row.id, entry, change)
    await session.execute(Posting.__table__.insert(), rows)  # type: ignore[attr-defined]


async def _unlink_tags(session: AsyncSession, tenant: Tenant, transaction_id: uuid.UUID) -> None:
    await session.execute(
        delete(TransactionTag).where(
            TransactionTag.workspace_id == tenant.workspace_id,  # type: ignore[arg-type]
            TransactionTag.transaction_id == transaction_id,  # type: ignore[arg-type]
        )
    )


async def _set_tags(
    session: AsyncSession, tenant: Tenant, transaction_id: uuid.UUID, names: tuple[str, ...]
) -> None:
    await _unlink_tags(session, tenant, transaction_id)
    await _link_tags(session, tenant, [(transaction_id, name) for name in names])


def _transaction_values(
    tenant: Tenant, row_id: uuid.UUID, entry: _Entry, kind: TransactionKind
) -> dict[str, Any]:
    """The columns of a transaction row that follow from its entry (sealed where secret)."""
    cipher = tenant.cipher
    primary = next(leg for leg in entry.legs if leg.account_id is not None)
    return {
        "date": entry.date,
        "kind": kind.value,
        "account_id": primary.account_id,
        "currency": primary.money.currency,
        "amount_enc": cipher.seal_int(primary.money.minor, TX_TABLE, "amount", row_id),
        "payee_enc": cipher.seal_optional(entry.payee, TX_TABLE, "payee", row_id),
        "narration_enc": cipher.seal_optional(entry.narration, TX_TABLE, "narration", row_id),
        "notes_enc": cipher.seal_optional(entry.notes, TX_TABLE, "notes", row_id),
    }


def _fill(tenant: Tenant, row: Transaction, entry: _Entry, kind: TransactionKind) -> None:
    for name, value in _transaction_values(tenant, row.id, entry, kind).items():
        setattr(row, name, value)


def _posting_rows(
    tenant: Tenant, transaction_id: uuid.UUID, entry: _Entry, change: totals.TotalsChange
) -> list[dict[str, Any]]:
    """Rows for the entry's postings; their amounts also go into `change`."""
    cipher = tenant.cipher
    rows = []
    for position, leg in enumerate(entry.legs):
        posting_id = uuid.uuid4()
        target = leg.account_id or leg.category_id
        assert target is not None
        rows.append(
            {
                "id": posting_id,
                "workspace_id": tenant.workspace_id,
                "transaction_id": transaction_id,
                "account_id": leg.account_id,
                "category_id": leg.category_id,
                "date": entry.date,
                "currency": leg.money.currency,
                "amount_enc": cipher.seal_int(leg.money.minor, POSTING_TABLE, "amount", posting_id),
                "memo_enc": cipher.seal_optional(leg.memo, POSTING_TABLE, "memo", posting_id),
                "position": position,
            }
        )
        change.add(target, entry.date, leg.money.currency, leg.money.minor)
    return rows


async def _record(
    session: AsyncSession, tenant: Tenant, entry: _Entry, row: Transaction | None
) -> Transaction:
    _check_balanced(entry.legs)
    _accounts, found = await _references(session, tenant, entry.legs)
    kind = _kind_of(entry, found)
    change = totals.TotalsChange()
    event_type, previous = EventType.TRANSACTION_POSTED, None
    if row is None:
        row = Transaction(
            workspace_id=tenant.workspace_id,
            date=entry.date,
            kind=kind.value,
            account_id=uuid.UUID(int=0),
            currency="",
            amount_enc=b"",
        )
        session.add(row)
    else:
        event_type, old_date = EventType.TRANSACTION_EDITED, row.date
        previous = (old_date, await _remove_postings(session, tenant, row, change))
        row.updated_at = utcnow()
    _fill(tenant, row, entry, kind)
    await session.flush()
    await _write_postings(session, tenant, row, entry, change)
    await _set_tags(session, tenant, row.id, entry.tags)
    await session.flush()
    await totals.apply(session, tenant, change)
    touched: list[_Leg | Posting] = [*entry.legs, *(previous[1] if previous else [])]
    event = _transaction_event(event_type, row.id, entry.date, touched, previous and previous[0])
    await _announce(session, tenant, [event], change, touched)
    return row


async def _remove_postings(
    session: AsyncSession, tenant: Tenant, row: Transaction, change: totals.TotalsChange
) -> list[Posting]:
    """Delete the transaction's postings (returned) and take them out of `change`."""
    repository = LedgerRepository(session, tenant.workspace_id)
    old = await repository.postings_of([row.id])
    _references_archived = await repository.accounts_by_ids(
        {p.account_id for p in old if p.account_id}
    )
    if any(account.archived for account in _references_archived):
        raise BadInput("The transaction is on an archived account", field="id")
    for posting in old:
        amount = tenant.cipher.open_int(posting.amount_enc, POSTING_TABLE, "amount", posting.id)
        target = posting.account_id or posting.category_id
        assert target is not None
        change.add(target, posting.date, posting.currency, -amount, postings=-1)
    await session.execute(
        delete(Posting).where(
            Posting.workspace_id == tenant.workspace_id,  # type: ignore[arg-type]
            Posting.transaction_id == row.id,  # type: ignore[arg-type]
        )
    )
    return old


# --- idempotency -----------------------------------------------------------------------


def _fingerprint(operation: str, payload: Any) -> str:
    def default(value: Any) -> str:
        return str(value)

    body = json.dumps([operation, payload], sort_keys=True, default=default)
    return hashlib.sha256(body.encode()).hexdigest()


async def idempotent(
    session: AsyncSession,
    tenant: Tenant,
    key: str,
    operation: str,
    payload: Any,
    action: Callable[[], Awaitable[uuid.UUID | None]],
) -> tuple[uuid.UUID | None, bool]:
    """Run `action` once per key: (result id, replayed). Another input under the key: CONFLICT."""
    if not key or len(key) > 255 or not key.isprintable():
        raise BadInput(
            "An idempotency key of 1 to 255 printable characters is required",
            field="idempotencyKey",
        )
    fingerprint = _fingerprint(operation, payload)
    existing = (
        await session.execute(
            select(IdempotencyRecord).where(
                IdempotencyRecord.workspace_id == tenant.workspace_id,  # type: ignore[arg-type]
                IdempotencyRecord.key == key,  # type: ignore[arg-type]
            )
        )
    ).scalar_one_or_none()
    if existing is not None:
        if existing.request_hash != fingerprint:
            raise Conflict(
                "This idempotency key was used with a different request", field="idempotencyKey"
            )
        return existing.result_id, True
    record = IdempotencyRecord(
        workspace_id=tenant.workspace_id, key=key, operation=operation, request_hash=fingerprint
    )
    session.add(record)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(
            "A request with this idempotency key is in progress", field="idempotencyKey"
        ) from None
    record.result_id = await action()
    await session.flush()
    return record.result_id, False


def _payload(draft: Any) -> Any:
    return asdict(draft)


# --- the service API -------------------------------------------------------------------


async def post(
    session: AsyncSession,
    tenant: Tenant,
    draft: TransactionDraft | TransferDraft | JournalDraft,
    *,
    idempotency_key: str,
) -> TransactionView:
    """Record a new transaction (or return the first result of this key)."""
    tenant.require_write()

    async def action() -> uuid.UUID:
        row = await _record(session, tenant, await _entry(session, tenant, draft), None)
        return row.id

    result_id, _replayed = await idempotent(
        session, tenant, idempotency_key, f"post:{type(draft).__name__}", _payload(draft), action
    )
    return await _result(session, tenant, result_id)


async def edit(
    session: AsyncSession,
    tenant: Tenant,
    transaction_id: uuid.UUID,
    draft: TransactionDraft | TransferDraft | JournalDraft,
    *,
    idempotency_key: str,
) -> TransactionView:
    """Replace a transaction's postings and details; balances move by the difference."""
    tenant.require_write()

    async def action() -> uuid.UUID:
        repository = LedgerRepository(session, tenant.workspace_id)
        row = await repository.transaction(transaction_id, lock=True)
        if row is None:
            raise NotFound("Transaction not found", field="id")
        await _record(session, tenant, await _entry(session, tenant, draft), row)
        return row.id

    payload = {"id": str(transaction_id), "draft": _payload(draft)}
    result_id, _ = await idempotent(
        session, tenant, idempotency_key, f"edit:{type(draft).__name__}", payload, action
    )
    return await _result(session, tenant, result_id)


async def remove(
    session: AsyncSession, tenant: Tenant, transaction_id: uuid.UUID, *, idempotency_key: str
) -> uuid.UUID:
    """Delete a transaction and take its postings out of every balance."""
    tenant.require_write()

    async def action() -> uuid.UUID:
        repository = LedgerRepository(session, tenant.workspace_id)
        row = await repository.transaction(transaction_id, lock=True)
        if row is None:
            raise NotFound("Transaction not found", field="id")
        change = totals.TotalsChange()
        old = await _remove_postings(session, tenant, row, change)
        await _unlink_tags(session, tenant, row.id)
        await session.flush()
        await session.delete(row)
        await session.flush()
        await totals.apply(session, tenant, change)
        event = _transaction_event(EventType.TRANSACTION_DELETED, row.id, row.date, old)
        await _announce(session, tenant, [event], change, old)
        return row.id

    result_id, _ = await idempotent(
        session, tenant, idempotency_key, "delete", {"id": str(transaction_id)}, action
    )
    assert result_id is not None
    return result_id


async def _result(
    session: AsyncSession, tenant: Tenant, result_id: uuid.UUID | None
) -> TransactionView:
    row = None
    if result_id is not None:
        row = await LedgerRepository(session, tenant.workspace_id).transaction(result_id)
    if row is None:
        raise Conflict(
            "The transaction of this idempotency key no longer exists", field="idempotencyKey"
        )
    return view(tenant, row)


# --- listing ---------------------------------------------------------------------------

SCAN_BATCH = 200


async def validate_filter(
    session: AsyncSession, tenant: Tenant, flt: TransactionFilter
) -> tuple[uuid.UUID, ...]:
    """Checks the filter's ids belong to the workspace; returns categories with descendants."""
    repository = LedgerRepository(session, tenant.workspace_id)
    if flt.date_from and flt.date_to and flt.date_from > flt.date_to:
        raise BadInput("dateFrom is after dateTo", field="dateFrom")
    for bound in (flt.amount_min, flt.amount_max):
        if bound is not None and (not bound.is_finite() or bound < 0):
            raise BadInput("Amount bounds are non-negative numbers", field="amountMin")
    if (
        flt.amount_min is not None
        and flt.amount_max is not None
        and flt.amount_min > flt.amount_max
    ):
        raise BadInput("amountMin is above amountMax", field="amountMin")
    if flt.text is not None and len(flt.text) > 200:
        raise BadInput("The search text is longer than 200 characters", field="text")
    if len(await repository.accounts_by_ids(flt.account_ids)) != len(set(flt.account_ids)):
        raise NotFound("Account not found", field="accountIds")
    if len(await repository.tags_by_ids(flt.tag_ids)) != len(set(flt.tag_ids)):
        raise NotFound("Tag not found", field="tagIds")
    if not flt.category_ids:
        return ()
    tree = await repository.category_tree()
    if not set(flt.category_ids) <= {category_id for category_id, _ in tree}:
        raise NotFound("Category not found", field="categoryIds")
    return tuple(categories.with_descendants(tree, set(flt.category_ids)))


def matches(item: TransactionView, flt: TransactionFilter) -> bool:
    magnitude = abs(item.amount.amount)
    if flt.amount_min is not None and magnitude < flt.amount_min:
        return False
    if flt.amount_max is not None and magnitude > flt.amount_max:
        return False
    if flt.text:
        needle = flt.text.casefold()
        haystack = " ".join(filter(None, (item.payee, item.narration, item.notes))).casefold()
        if needle not in haystack:
            return False
    return True


async def list_transactions(
    session: AsyncSession,
    tenant: Tenant,
    flt: TransactionFilter,
    *,
    first: int,
    after: tuple[dt.date, uuid.UUID] | None = None,
) -> TransactionPage:
    """Newest first. Ids and dates filter in SQL; amounts and text (encrypted) in memory."""
    category_ids = await validate_filter(session, tenant, flt)
    repository = LedgerRepository(session, tenant.workspace_id)
    needs_scan = flt.amount_min is not None or flt.amount_max is not None or bool(flt.text)
    page = TransactionPage()
    cursor = after
    batch = max(SCAN_BATCH, first + 1) if needs_scan else first + 1
    while True:
        rows = await repository.transaction_page(
            limit=batch,
            after=cursor,
            account_ids=flt.account_ids,
            category_ids=category_ids,
            tag_ids=flt.tag_ids,
            date_from=flt.date_from,
            date_to=flt.date_to,
        )
        for row in rows:
            item = view(tenant, row)
            if needs_scan and not matches(item, flt):
                continue
            if len(page.items) == first:
                page.has_next_page = True
                return page
            page.items.append(item)
        if len(rows) < batch:
            return page
        cursor = (rows[-1].date, rows[-1].id)


# --- bulk ------------------------------------------------------------------------------


async def post_many(
    session: AsyncSession,
    tenant: Tenant,
    drafts: Sequence[TransactionDraft | TransferDraft | JournalDraft],
) -> int:
    """Record many transactions in one go (imports, the demo seed, benchmarks).

    The same validation as `post`, but rows are inserted in batches and month totals
    are applied once at the end. Not idempotent per item: an import job dedupes first.
    """
    tenant.require_write()
    repository = LedgerRepository(session, tenant.workspace_id)
    account_rows = {a.id: a for a in await repository.accounts()}
    category_rows = {c.id: c for c in await repository.categories()}
    change = totals.TotalsChange()
    tx_rows: list[dict[str, Any]] = []
    posting_rows: list[dict[str, Any]] = []
    tag_links: list[tuple[uuid.UUID, str]] = []
    events: list[outbox.EventDraft] = []
    now = utcnow()
    for draft in drafts:
        if isinstance(draft, TransactionDraft):
            account = account_rows.get(draft.account_id)
            if account is None:
                raise NotFound("Account not found", field="accountId")
            entry = _entry_from_draft(draft, account)
        elif isinstance(draft, TransferDraft):
            entry = await _entry_from_transfer(session, tenant, draft, account_rows)
        else:
            entry = _entry_from_journal(draft)
        _check_balanced(entry.legs)
        _check_accounts(entry.legs, account_rows)
        for leg in entry.legs:
            if leg.category_id is not None and leg.category_id not in category_rows:
                found = await repository.categories_by_ids([leg.category_id])
                if not found:
                    raise NotFound("Category not found", field="categoryId")
                category_rows[found[0].id] = found[0]
        row_id = uuid.uuid4()
        tx_rows.append(
            {
                "id": row_id,
                "workspace_id": tenant.workspace_id,
                "created_at": now,
                "updated_at": now,
                **_transaction_values(tenant, row_id, entry, _kind_of(entry, category_rows)),
            }
        )
        posting_rows.extend(_posting_rows(tenant, row_id, entry, change))
        tag_links.extend((row_id, name) for name in entry.tags)
        events.append(
            _transaction_event(EventType.TRANSACTION_POSTED, row_id, entry.date, entry.legs)
        )
    batch = 2_000
    tables = (
        (Transaction.__table__, tx_rows),  # type: ignore[attr-defined]
        (Posting.__table__, posting_rows),  # type: ignore[attr-defined]
    )
    for table, rows in tables:
        for start in range(0, len(rows), batch):
            await session.execute(table.insert(), rows[start : start + batch])
    await _link_tags(session, tenant, tag_links)
    await totals.apply(session, tenant, change)
    # One event per transaction, and one balance.changed for the whole call.
    await _announce(session, tenant, events, change, account_rows.values())
    return len(tx_rows)


# --- events ----------------------------------------------------------------------------


def _transaction_event(
    event_type: EventType,
    transaction_id: uuid.UUID,
    date: dt.date,
    touched: Iterable[_Leg | Posting],
    previous_date: dt.date | None = None,
) -> outbox.EventDraft:
    """Ids and the date only: subscribers re-read amounts and texts under their scope."""
    touched = list(touched)
    data: dict[str, Any] = {
        "transaction": str(transaction_id),
        "accounts": sorted({str(t.account_id) for t in touched if t.account_id}),
        "categories": sorted({str(t.category_id) for t in touched if t.category_id}),
        "date": date.isoformat(),
    }
    if previous_date is not None and previous_date != date:
        data["previous_date"] = previous_date.isoformat()
    return event_type, data


async def _announce(
    session: AsyncSession,
    tenant: Tenant,
    events: list[outbox.EventDraft],
    change: totals.TotalsChange,
    accounts: Iterable[_Leg | Posting | Account],
) -> None:
    """Append the events, then one balance.changed naming every account that moved."""
    account_ids = {a.id if isinstance(a, Account) else a.account_id for a in accounts}
    moved = sorted(
        {
            str(target)
            for (target, _month, _currency), delta in change.deltas.items()
            if delta.amount and target in account_ids
        }
    )
    if moved:
        events = [*events, (EventType.BALANCE_CHANGED, {"accounts": moved})]
    await outbox.emit_many(session, tenant.workspace_id, events)


async def _link_tags(
    session: AsyncSession, tenant: Tenant, links: list[tuple[uuid.UUID, str]]
) -> None:
    """Create the missing tags once, then insert every link in one statement."""
    if not links:
        return
    names = sorted({name for _, name in links})
    repository = LedgerRepository(session, tenant.workspace_id)
    tags = {tag.name: tag.id for tag in await repository.tags_by_names(names)}
    for name in names:
        if name not in tags:
            tag = Tag(workspace_id=tenant.workspace_id, name=name)
            session.add(tag)
            tags[name] = tag.id
    await session.flush()
    await session.execute(
        TransactionTag.__table__.insert(),  # type: ignore[attr-defined]
        [
            {"transaction_id": tx_id, "tag_id": tags[name], "workspace_id": tenant.workspace_id}
            for tx_id, name in links
        ],
    )
