"""The executor every operation runs on: Strawberry's, with each subscription event's copy
given memos of its own.

graphql-core 3.3 executes a subscription event on a shallow copy of the subscription's
executor (`build_per_event_executor`), so every event's copy shares the subscription's
memo of collected subfields. That memo is keyed by the identity of a field list that each
event's execution makes anew: it never hits across events, and it keeps every event's
entry (the list and its collected fields, about 2 KB) alive for as long as the subscription
lives. At 1,000 events a second that was 2 MB a second of memory that never came back, and
hundreds of thousands of surviving objects for the collector to walk (bench/README.md).
Within one event the memo still works as intended (a list of objects collects its
subfields once).
"""

from __future__ import annotations

from typing import Any

from graphql.execution.executor import Executor
from graphql.pyutils import RefMap
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class WealthWiseExecutor(StrawberryGraphQLCoreExecutionContext):
    def build_per_event_executor(self, payload: Any) -> Executor[Any]:
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}
        executor._stream_usages = RefMap()
        return executor
