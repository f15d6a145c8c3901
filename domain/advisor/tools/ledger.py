"""What the ledger tools share: the workspace's names, period checks, and category postings
with the transactions they belong to (the citations), summed and converted to the base
currency exactly the way domain/ledger/reports.py does it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass

from domain.advisor.tools.base import ToolContext, ToolInputError, minor_money
from domain.core.errors import DomainError
from domain.ledger import accounts as accounts_service
from domain.ledger import categories as categories_service
from domain.ledger import reports, totals
from domain.ledger.fx import load_table
from domain.ledger.models import Account, Category, CategoryKind
from domain.ledger.repository import LedgerRepository
from domain.ledger.transactions import POSTING_TABLE, TX_TABLE


def period(start: dt.date, end: dt.date) -> reports.Period:
    try:
        return reports.Period(start, end)
    except DomainError as error:
        raise ToolInputError(error.message, field="start") from None


def month_label(month: int) -> str:
    return f"{month // 100}-{month % 100:02d}"


@dataclass(frozen=True)
class Names:
    """The workspace's categories and accounts, with decrypted account names."""

    categories: dict[uuid.UUID, Category]
    accounts: dict[uuid.UUID, Account]
    account_names: dict[uuid.UUID, str]

    def ids_of_kind(self, kind: CategoryKind) -> set[uuid.UUID]:
        return {c.id for c in self.categories.values() if c.kind == kind.value}

    def category_label(self, category_id: uuid.UUID) -> str:
        category = self.categories.get(category_id)
        return category.name if category else "(unknown category)"

    def parent_label(self, category_id: uuid.UUID) -> str | None:
        category = self.categories.get(category_id)
        if category is None or category.parent_id is None:
            return None
        return self.category_label(category.parent_id)


async def load_names(ctx: ToolContext) -> Names:
    repository = LedgerRepository(ctx.session, ctx.tenant.workspace_id)
    categories = {c.id: c for c in await repository.categories()}
    accounts = {a.id: a for a in await repository.accounts()}
    names = {a.id: accounts_service.view(ctx.tenant, a).name for a in accounts.values()}
    return Names(categories, accounts, names)


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        return None


def _by_name_or_id(
    wanted: Sequence[str], known: dict[uuid.UUID, str], what: str, field: str
) -> set[uuid.UUID]:
    """Ids for names (case-insensitive, surrounding spaces ignored) or ids of this workspace."""
    by_name: dict[str, set[uuid.UUID]] = defaultdict(set)
    for known_id, name in known.items():
        by_name[name.strip().casefold()].add(known_id)
    found: set[uuid.UUID] = set()
    for value in wanted:
        key = value.strip().casefold()
        if key in by_name:
            found |= by_name[key]
            continue
        item_id = _uuid_or_none(value)
        if item_id is not None and item_id in known:
            found.add(item_id)
            continue
        choices = ", ".join(sorted({name for name in known.values()}, key=str.casefold))
        raise ToolInputError(f"Unknown {what} {value!r}; known: {choices}", field=field)
    return found


def resolve_categories(
    names: Names, wanted: Sequence[str], kinds: Iterable[CategoryKind] = (CategoryKind.EXPENSE,)
) -> set[uuid.UUID]:
    """The named categories and every subcategory below them ("Food" has "Groceries")."""
    allowed = {kind.value for kind in kinds}
    known = {c.id: c.name for c in names.categories.values() if c.kind in allowed}
    roots = _by_name_or_id(wanted, known, "category", "categories")
    tree = [(c.id, c.parent_id) for c in names.categories.values()]
    return categories_service.with_descendants(tree, roots) & set(known)


def resolve_accounts(names: Names, wanted: Sequence[str]) -> set[uuid.UUID]:
    return _by_name_or_id(wanted, names.account_names, "account", "accounts")


# --- category postings --------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryPosting:
    """One posting on a category, signed as posted: an expense is positive (a debit), a
    refund negative; income is negative (a credit)."""

    transaction_id: uuid.UUID
    category_id: uuid.UUID
    account_id: uuid.UUID  # the account the transaction is about
    date: dt.date
    currency: str
    minor: int
    payee: str | None


async def category_postings(
    ctx: ToolContext,
    start: dt.date,
    end: dt.date,
    category_ids: Iterable[uuid.UUID],
    *,
    with_payee: bool = True,
) -> list[CategoryPosting]:
    """Every posting on these categories dated in [start, end], decrypted, in no particular
    order (payees are decrypted only when asked for: a long period touches many postings)."""
    ids = sorted(set(category_ids))
    if not ids:
        return []
    repository = LedgerRepository(ctx.session, ctx.tenant.workspace_id)
    rows = await repository.posting_amounts_between(start, end, ids, with_payee=True)
    cipher = ctx.tenant.cipher
    payees: dict[uuid.UUID, str | None] = {}
    found = []
    for posting_id, category_id, day, currency, amount_enc, tx_id, payee_enc, account_id in rows:
        if with_payee and tx_id not in payees:
            payees[tx_id] = cipher.open_optional(payee_enc, TX_TABLE, "payee", tx_id)
        found.append(
            CategoryPosting(
                transaction_id=tx_id,
                category_id=category_id,
                account_id=account_id,
                date=day,
                currency=currency,
                minor=cipher.open_int(amount_enc, POSTING_TABLE, "amount", posting_id),
                payee=payees.get(tx_id),
            )
        )
    return found


def transaction_ids(postings: Iterable[CategoryPosting]) -> tuple[uuid.UUID, ...]:
    """Each transaction once, in date order."""
    seen: dict[uuid.UUID, dt.date] = {}
    for posting in postings:
        seen.setdefault(posting.transaction_id, posting.date)
    return tuple(sorted(seen, key=lambda tx_id: (seen[tx_id], tx_id)))


async def converter(ctx: ToolContext) -> reports.BaseConverter:
    return reports.BaseConverter(
        await load_table(ctx.session, ctx.tenant), ctx.tenant.base_currency
    )


@dataclass
class Group:
    """The postings of one group, summed in the base currency (and per own currency)."""

    base_minor: int = 0
    native: dict[str, int] | None = None
    postings: int = 0
    transactions: set[uuid.UUID] | None = None

    def native_amounts(self) -> list[dict[str, str]]:
        return [minor_money(minor, c) for c, minor in sorted((self.native or {}).items())]


def summarise(
    postings: Iterable[CategoryPosting],
    key: Callable[[CategoryPosting], Hashable],
    convert: reports.BaseConverter,
) -> dict[Hashable, Group]:
    """Sum per (category, month, currency, group) first, then convert each sum: the same
    rounding as the period reports, so the figures agree with them to the unit."""
    cells: dict[tuple[uuid.UUID, int, str, Hashable], int] = defaultdict(int)
    groups: dict[Hashable, Group] = {}
    for posting in postings:
        group_key = key(posting)
        month = totals.month_of(posting.date)
        cells[(posting.category_id, month, posting.currency, group_key)] += posting.minor
        group = groups.setdefault(group_key, Group(native={}, transactions=set()))
        assert group.native is not None and group.transactions is not None
        group.native[posting.currency] = group.native.get(posting.currency, 0) + posting.minor
        group.postings += 1
        group.transactions.add(posting.transaction_id)
    for (_category, month, currency, group_key), minor in cells.items():
        groups[group_key].base_minor += convert(minor, currency, month)
    return groups


# --- the fast path: category sums without decrypting postings ----------------------------


@dataclass(frozen=True)
class CategorySums:
    """A period's sums per category, month and currency (the month totals for whole months,
    as the reports read them), and which transactions they come from: no posting is
    decrypted, so this is the path when no payee or account narrows the postings."""

    amounts: list[reports.Amount]
    usage: list[tuple[uuid.UUID, uuid.UUID, dt.date]]  # (transaction, category, date)

    def transaction_ids(self, categories: set[uuid.UUID] | None = None) -> tuple[uuid.UUID, ...]:
        seen: dict[uuid.UUID, dt.date] = {}
        for tx_id, category_id, day in self.usage:
            if categories is None or category_id in categories:
                seen.setdefault(tx_id, day)
        return tuple(sorted(seen, key=lambda tx_id: (seen[tx_id], tx_id)))


async def category_sums(
    ctx: ToolContext, span: reports.Period, category_ids: Iterable[uuid.UUID]
) -> CategorySums:
    ids = sorted(set(category_ids))
    if not ids:
        return CategorySums([], [])
    amounts = await reports.category_amounts(ctx.session, ctx.tenant, span, ids)
    repository = LedgerRepository(ctx.session, ctx.tenant.workspace_id)
    rows = await repository.posting_transactions_between(span.start, span.end, ids)
    return CategorySums(
        [a for a in amounts if a.postings], [(row[0], row[1], row[2]) for row in rows]
    )


def summarise_sums(
    sums: CategorySums,
    key: Callable[[uuid.UUID, int], Hashable],
    convert: reports.BaseConverter,
    categories: set[uuid.UUID] | None = None,
) -> dict[Hashable, Group]:
    """As `summarise`, for groups that depend on the category and month only."""
    groups: dict[Hashable, Group] = {}
    for amount in sums.amounts:
        if categories is not None and amount.target_id not in categories:
            continue
        group = groups.setdefault(
            key(amount.target_id, amount.month), Group(native={}, transactions=set())
        )
        assert group.native is not None
        group.native[amount.currency] = group.native.get(amount.currency, 0) + amount.minor
        group.postings += amount.postings
        group.base_minor += convert(amount.minor, amount.currency, amount.month)
    for tx_id, category_id, day in sums.usage:
        if categories is not None and category_id not in categories:
            continue
        group = groups.setdefault(
            key(category_id, totals.month_of(day)), Group(native={}, transactions=set())
        )
        assert group.transactions is not None
        group.transactions.add(tx_id)
    return groups


def unconverted(convert: reports.BaseConverter) -> list[dict[str, str]]:
    """Sums no FX rate covered: left out of the base-currency figures, shown as they are."""
    return [minor_money(m.minor, m.currency) for m in convert.leftovers()]
