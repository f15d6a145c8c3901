"""The event types clients can hear about, and the fields each may carry.

Event data holds ids, dates and flags only: never amounts, payees, names or any other
sealed value. Subscribers re-read what they show from the database, under their own
workspace's scope. Later issues add their types (and fields) here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class EventType(enum.StrEnum):
    TRANSACTION_POSTED = "transaction.posted"
    TRANSACTION_EDITED = "transaction.edited"
    TRANSACTION_DELETED = "transaction.deleted"
    BALANCE_CHANGED = "balance.changed"
    ADVISOR_MESSAGE_UPDATED = "advisor.message.updated"


_TRANSACTION_FIELDS = frozenset({"transaction", "accounts", "categories", "date"})

# Every field an event of a type may carry; `emit` refuses anything else.
EVENT_FIELDS: Mapping[EventType, frozenset[str]] = {
    EventType.TRANSACTION_POSTED: _TRANSACTION_FIELDS,
    EventType.TRANSACTION_EDITED: _TRANSACTION_FIELDS | {"previous_date"},
    EventType.TRANSACTION_DELETED: _TRANSACTION_FIELDS,
    EventType.BALANCE_CHANGED: frozenset({"accounts"}),
    # An advisor answer was saved again (it grew, called a tool, or finished): subscribers
    # re-read the message; the text itself never travels in an event.
    EventType.ADVISOR_MESSAGE_UPDATED: frozenset({"message", "thread", "version", "status"}),
}
