"""Each subscription event runs on an executor with memos of its own (schema/execution.py):
with graphql-core's own, every event's collected subfields stay alive for as long as the
subscription does."""

from __future__ import annotations

import gc
from collections.abc import AsyncGenerator

import strawberry
from graphql.execution.collect_fields import FieldDetails
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from schema import schema as app_schema
from schema.execution import WealthWiseExecutor

EVENTS = 300


@strawberry.type
class Point:
    x: int
    y: int


@strawberry.type
class Event:
    seq: int
    point: Point  # an object: its subfields are collected (and memoized) per event


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def events(self, count: int) -> AsyncGenerator[Event, None]:
        for seq in range(count):
            yield Event(seq=seq, point=Point(x=seq, y=-seq))


def _field_details_alive() -> int:
    gc.collect()
    return sum(1 for thing in gc.get_objects() if isinstance(thing, FieldDetails))


async def _kept_per_event(executor: type[StrawberryGraphQLCoreExecutionContext]) -> float:
    """FieldDetails still alive per event delivered, while the subscription is open."""
    schema = strawberry.Schema(
        query=Query, subscription=Subscription, execution_context_class=executor
    )
    stream = await schema.subscribe(
        f"subscription {{ events(count: {EVENTS + 10}) {{ seq point {{ x y }} }} }}"
    )
    assert not hasattr(stream, "errors"), stream
    seen: list[int] = []
    before = after = 0
    async for result in stream:  # type: ignore[union-attr]
        assert result.errors is None, result.errors
        seen.append(result.data["events"]["point"]["x"])
        if len(seen) == 1:
            before = _field_details_alive()
        if len(seen) == EVENTS:
            after = _field_details_alive()  # still subscribed
            break
    await stream.aclose()  # type: ignore[union-attr]
    assert seen == list(range(EVENTS))
    return (after - before) / (EVENTS - 1)


async def test_graphql_cores_per_event_executor_keeps_every_events_subfields() -> None:
    """What the app's executor works around; should graphql-core fix it, this fails and
    schema/execution.py can go."""
    assert await _kept_per_event(StrawberryGraphQLCoreExecutionContext) >= 1


async def test_the_apps_executor_keeps_nothing_per_event() -> None:
    assert await _kept_per_event(WealthWiseExecutor) < 0.05
    assert app_schema.execution_context_class is WealthWiseExecutor
