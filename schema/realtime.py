"""Subscriptions: the workspace's live events over WebSocket (graphql-transport-ws).

Every subscription reads one stream: the caller's own workspace's outbox events, the
backlog after a sequence number and then the live stream, in order, without duplicates
(api/realtime/stream.py). Events carry ids only; what a client selects (balances,
transactions) is read per event under the connection's scope, with fresh DataLoaders.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from domain.core.errors import NotFound, WebSocketRequired
from domain.ledger import accounts as accounts_service
from domain.ledger import transactions as tx_service
from domain.ledger.repository import LedgerRepository
from domain.realtime.envelope import Envelope
from domain.realtime.events import EventType
from schema.common import CanRead
from schema.context import Info
from schema.ids import decode_ids, encode_id
from schema.ledger.queries import TransactionFilter
from schema.ledger.types import Account, Transaction


@strawberry.enum(description="What happened in the workspace.")
class WorkspaceEventType(enum.Enum):
    TRANSACTION_POSTED = EventType.TRANSACTION_POSTED.value
    TRANSACTION_EDITED = EventType.TRANSACTION_EDITED.value
    TRANSACTION_DELETED = EventType.TRANSACTION_DELETED.value
    BALANCE_CHANGED = EventType.BALANCE_CHANGED.value


_KNOWN = {member.value for member in WorkspaceEventType}


def _uuids(values: Any) -> list[uuid.UUID]:
    return [uuid.UUID(str(v)) for v in values or []]


def _date(value: Any) -> dt.date | None:
    return dt.date.fromisoformat(value) if isinstance(value, str) else None


async def _accounts(info: Info, ids: list[uuid.UUID]) -> list[Account]:
    tenant = await info.context.tenant()
    rows = await info.context.loaders.account.load_many(ids)
    return [Account.of(accounts_service.view(tenant, row)) for row in rows if row is not None]


async def _transaction(info: Info, transaction_id: uuid.UUID | None) -> Transaction | None:
    """The transaction as it is now (None once deleted); the read is audited like a query's."""
    if transaction_id is None:
        return None
    (found,) = await Transaction.resolve_nodes(info=info, node_ids=[transaction_id.hex])
    return found


@strawberry.type(description="One event of the workspace, as the outbox recorded it.")
class WorkspaceEvent:
    seq: int = strawberry.field(
        description="Gapless per workspace: resume with `workspaceEvents(since: seq)`."
    )
    type: WorkspaceEventType
    occurred_at: dt.datetime
    date: dt.date | None = strawberry.field(description="The transaction's date, if any.")
    previous_date: dt.date | None = strawberry.field(
        description="An edited transaction's date before the edit, when it moved."
    )
    transaction_uuid: strawberry.Private[uuid.UUID | None]
    account_uuids: strawberry.Private[list[uuid.UUID]]
    category_uuids: strawberry.Private[list[uuid.UUID]]

    @classmethod
    def of(cls, envelope: Envelope) -> WorkspaceEvent:
        data = envelope.data
        transaction = data.get("transaction")
        return cls(
            seq=envelope.seq,
            type=WorkspaceEventType(envelope.type),
            occurred_at=envelope.at,
            date=_date(data.get("date")),
            previous_date=_date(data.get("previous_date")),
            transaction_uuid=uuid.UUID(transaction) if transaction else None,
            account_uuids=_uuids(data.get("accounts")),
            category_uuids=_uuids(data.get("categories")),
        )

    @strawberry.field(description="The transaction's global id (also after a deletion).")
    def transaction_id(self) -> strawberry.ID | None:
        if self.transaction_uuid is None:
            return None
        return strawberry.ID(encode_id("Transaction", self.transaction_uuid))

    @strawberry.field
    def account_ids(self) -> list[strawberry.ID]:
        return [strawberry.ID(encode_id("Account", i)) for i in self.account_uuids]

    @strawberry.field
    def category_ids(self) -> list[strawberry.ID]:
        return [strawberry.ID(encode_id("Category", i)) for i in self.category_uuids]

    @strawberry.field(description="The transaction as it is now; null once deleted.")
    async def transaction(self, info: Info) -> Transaction | None:
        return await _transaction(info, self.transaction_uuid)

    @strawberry.field(description="The accounts the event touched, as they are now.")
    async def accounts(self, info: Info) -> list[Account]:
        return await _accounts(info, self.account_uuids)


@strawberry.type(description="Balances that moved in one committed change.")
class BalanceUpdate:
    seq: int
    occurred_at: dt.datetime
    account_uuids: strawberry.Private[list[uuid.UUID]]

    @strawberry.field(description="The accounts whose balance moved (of those asked for).")
    async def accounts(self, info: Info) -> list[Account]:
        return await _accounts(info, self.account_uuids)


@strawberry.enum
class TransactionChangeKind(enum.Enum):
    POSTED = "posted"
    EDITED = "edited"
    DELETED = "deleted"


_CHANGE_KINDS = {
    EventType.TRANSACTION_POSTED.value: TransactionChangeKind.POSTED,
    EventType.TRANSACTION_EDITED.value: TransactionChangeKind.EDITED,
    EventType.TRANSACTION_DELETED.value: TransactionChangeKind.DELETED,
}


@strawberry.type(description="A transaction posted, edited or deleted.")
class TransactionChange:
    seq: int
    occurred_at: dt.datetime
    kind: TransactionChangeKind
    date: dt.date
    previous_date: dt.date | None
    transaction_uuid: strawberry.Private[uuid.UUID]

    @strawberry.field
    def transaction_id(self) -> strawberry.ID:
        return strawberry.ID(encode_id("Transaction", self.transaction_uuid))

    @strawberry.field(description="The transaction as it is now; null once deleted.")
    async def transaction(self, info: Info) -> Transaction | None:
        return await _transaction(info, self.transaction_uuid)


class _ChangeFilter:
    """`TransactionFilter` applied to events. Ids and dates are checked on the event; tags,
    amounts and text on the transaction as it is now (a deletion matches on ids and dates
    alone, since nothing else of it can be read any more)."""

    def __init__(self, flt: tx_service.TransactionFilter, categories: tuple[uuid.UUID, ...]):
        self.flt = flt
        self.categories = set(categories)
        self.needs_row = bool(flt.tag_ids or flt.amount_min or flt.amount_max or flt.text)

    def _in_range(self, day: dt.date | None) -> bool:
        if day is None:
            return False
        flt = self.flt
        return (flt.date_from is None or day >= flt.date_from) and (
            flt.date_to is None or day <= flt.date_to
        )

    def matches_event(self, envelope: Envelope) -> bool:
        data, flt = envelope.data, self.flt
        if flt.account_ids and not set(_uuids(data.get("accounts"))) & set(flt.account_ids):
            return False
        if self.categories and not set(_uuids(data.get("categories"))) & self.categories:
            return False
        if flt.date_from or flt.date_to:
            dates = (_date(data.get("date")), _date(data.get("previous_date")))
            if not any(self._in_range(day) for day in dates):
                return False
        return True

    async def matches_now(self, info: Info, transaction_id: uuid.UUID) -> bool:
        if not self.needs_row:
            return True
        tenant = await info.context.tenant()
        async with info.context.db() as session:
            found = await tx_service.get_transaction(session, tenant, transaction_id)
            if found is None:
                return False
            if self.flt.tag_ids:
                links = await LedgerRepository(session, tenant.workspace_id).tag_links_of(
                    [transaction_id]
                )
                if not {tag.id for _, tag in links} & set(self.flt.tag_ids):
                    return False
        return tx_service.matches(found, self.flt)


async def _change_filter(info: Info, flt: TransactionFilter | None) -> _ChangeFilter:
    domain_filter = flt.to_domain() if flt is not None else tx_service.TransactionFilter()
    tenant = await info.context.tenant()
    async with info.context.db() as session:
        categories = await tx_service.validate_filter(session, tenant, domain_filter)
    return _ChangeFilter(domain_filter, categories)


async def _requested_accounts(info: Info, ids: list[strawberry.ID] | None) -> set[uuid.UUID]:
    wanted = set(decode_ids(ids, "Account", field="accountIds"))
    if not wanted:
        return wanted
    tenant = await info.context.tenant()
    async with info.context.db() as session:
        found = await LedgerRepository(session, tenant.workspace_id).accounts_by_ids(wanted)
    if len(found) != len(wanted):
        raise NotFound("Account not found", field="accountIds")
    return wanted


@strawberry.type
class RealtimeSubscription:
    @strawberry.subscription(
        permission_classes=[CanRead],
        description=(
            "Every event of your workspace, in order. Pass the last `seq` you saw as "
            "`since` to receive what you missed first (kept for `outbox_retention_days`); "
            "without it, events from now on."
        ),
    )
    async def workspace_events(
        self, info: Info, since: int | None = None
    ) -> AsyncGenerator[WorkspaceEvent, None]:
        async for envelope in info.context.events(since, share=True):
            if envelope.type in _KNOWN:
                yield WorkspaceEvent.of(envelope)

    @strawberry.subscription(
        permission_classes=[CanRead],
        description="Balances as they move: all accounts, or only `accountIds`.",
    )
    async def balance_updated(
        self, info: Info, account_ids: list[strawberry.ID] | None = None
    ) -> AsyncGenerator[BalanceUpdate, None]:
        wanted = await _requested_accounts(info, account_ids)
        async for envelope in info.context.events(None, share=True):
            if envelope.type != EventType.BALANCE_CHANGED.value:
                continue
            moved = [i for i in _uuids(envelope.data.get("accounts")) if not wanted or i in wanted]
            if moved:
                yield BalanceUpdate(seq=envelope.seq, occurred_at=envelope.at, account_uuids=moved)

    @strawberry.subscription(
        permission_classes=[CanRead],
        description=(
            "Transactions posted, edited or deleted that match `filter` (the same filter "
            "as `transactions`). An edit matches if the transaction matched before or "
            "after it."
        ),
    )
    async def transactions_changed(
        self, info: Info, filter: TransactionFilter | None = None
    ) -> AsyncGenerator[TransactionChange, None]:
        matcher = await _change_filter(info, filter)
        async for envelope in info.context.events(None, share=True):
            kind = _CHANGE_KINDS.get(envelope.type)
            if kind is None or not matcher.matches_event(envelope):
                continue
            transaction_id = uuid.UUID(str(envelope.data["transaction"]))
            if kind is not TransactionChangeKind.DELETED and not await matcher.matches_now(
                info, transaction_id
            ):
                continue
            day = _date(envelope.data.get("date"))
            assert day is not None
            yield TransactionChange(
                seq=envelope.seq,
                occurred_at=envelope.at,
                kind=kind,
                date=day,
                previous_date=_date(envelope.data.get("previous_date")),
                transaction_uuid=transaction_id,
            )


class OperationTransport(SchemaExtension):
    """Subscriptions over WebSocket only; queries and mutations over HTTP only (one request
    is one transaction there, which a long-lived connection cannot give)."""

    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        operation = execution.operation_type
        over_websocket = getattr(execution.context, "over_websocket", False)
        if operation is not None and (operation.value == "subscription") != over_websocket:
            if over_websocket:
                raise GraphQLError(
                    "Queries and mutations are served over HTTP POST /graphql",
                    extensions={"code": "HTTP_REQUIRED"},
                )
            refusal = WebSocketRequired()
            raise GraphQLError(refusal.message, extensions=refusal.extensions())
        yield
