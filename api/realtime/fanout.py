"""Shared subscription feeds: the selection executed once per event for every subscriber
of the process that asked the same thing, the encoded result written to each.

Executing a subscription's selection for every subscriber and every event made the GraphQL
executor most of a delivery's cost (bench/README.md, "Realtime"). Subscribers that would
receive identical results therefore share one *feed*: the same workspace, the same role
and kind of caller (a person or an API token), the same document, operation name and
variables, and no `since` (a replay is each subscriber's own). The feed runs the operation
once through the schema (every extension, the resolver, the executor) under a context of
its own, encodes each result once, and writes it to each member's socket under the member's
operation id.

A member's own operation runs only until it joins: its pipeline (sign-in, limits,
permissions, argument checks, a `since` replay) ends there, and so does its task (see
`TransportWS.run_operation`). What stays is a `Member`: a queue of encoded results and the
operation's id (about a kilobyte, where a suspended Strawberry operation with its executor
and chain of async generators held some 20 KB). The connection writes what its members have
queued with one short-lived task (`ConnectionContext.wake`); the client's `complete`, the
connection's end or the feed's end lets the member go.

What stays per subscriber: its sign-in, its rate-limit charge, the limits, permissions and
argument checks of its subscribe (each member's own pipeline runs up to the point where its
resolver asks for events, and only then joins), its close codes, a bounded queue (a member
that falls `realtime_queue_size` results behind is closed with 1013, like a lagging hub
subscriber; it reconnects with `since`), and the audit trail: a transaction the feed reads
is recorded for every member, with the member's own actor, address and request id.

A result "as it is now" (a transaction, a balance) is read once per event for all members,
when the feed executes it, rather than a few milliseconds apart by each.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections import deque
from collections.abc import AsyncIterator, Hashable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from graphql import (
    FieldNode,
    GraphQLError,
    NonNullTypeNode,
    VariableNode,
    get_operation_ast,
    parse,
)
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.utils.aio import aclosing

from domain.core.tenancy import Tenant

if TYPE_CHECKING:
    from strawberry.schema import BaseSchema

    from api.realtime.connection import ConnectionContext
    from domain.core.settings import Settings
    from domain.realtime.envelope import Envelope

log = structlog.get_logger(__name__)

SLOW_MEMBER = 1013  # Try Again Later: the client reconnects and resumes with `since`
SLOW_REASON = "Too slow to keep up: reconnect with since"


@dataclass(frozen=True, slots=True)
class SharedOperation:
    """The graphql-transport-ws operation a resolver runs for (set by the WebSocket
    handler for each operation's task)."""

    id: str
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    schema: BaseSchema

    def without_since(self) -> SharedOperation | None:
        """The same operation from now on: its `since` variable left out. None when `since`
        is no variable of its own (a literal, a default, a variable used elsewhere too),
        since only then is the rest of the answer known to be the same."""
        try:
            document = parse(self.query)
        except GraphQLError:
            return None
        operation = get_operation_ast(document, self.operation_name)
        if operation is None or len(operation.selection_set.selections) != 1:
            return None
        field = operation.selection_set.selections[0]
        if not isinstance(field, FieldNode):
            return None
        since = next((a for a in field.arguments or () if a.name.value == "since"), None)
        if since is None or not isinstance(since.value, VariableNode):
            return None
        name = since.value.name.value
        definitions = [
            d for d in operation.variable_definitions or () if d.variable.name.value == name
        ]
        if (
            len(definitions) != 1
            or definitions[0].default_value is not None
            or isinstance(definitions[0].type, NonNullTypeNode)
        ):
            return None
        if self.query.count("$" + name) != 2:  # its definition and this one use
            return None
        variables = {k: v for k, v in (self.variables or {}).items() if k != name}
        return dataclasses.replace(self, variables=variables)


CURRENT_OPERATION: ContextVar[SharedOperation | None] = ContextVar(
    "wealthwise_ws_operation", default=None
)


@dataclass(slots=True)
class FanoutMetrics:
    feeds: int = 0
    members: int = 0
    executions: int = 0  # results the feeds produced (one per event and feed)
    deliveries: int = 0  # results queued to members
    slow_members_closed: int = 0
    # Results a member resuming with `since` held while it replayed, and dropped because
    # its replay had them already.
    replayed_twice_dropped: int = 0
    detached: int = 0  # members whose own operation task ended as they joined


def encode_result(result: ExecutionResult) -> str:
    """The `payload` of a graphql-transport-ws `next` message, as Strawberry builds it."""
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [error.formatted for error in result.errors]
    if result.extensions:
        payload["extensions"] = result.extensions
    return json.dumps(payload, separators=(",", ":"))


class Member:
    """One subscriber of a feed: its queue of encoded results, which its connection writes
    (`ConnectionContext.wake`). A member that resumes with `since` holds the feed's results
    while it replays the outbox, then drops those it replayed (by sequence number) and
    writes the rest. No task of its own: a member is a queue and an operation id."""

    __slots__ = (
        "bound",
        "completed",
        "context",
        "dropped",
        "ended",
        "feed",
        "floor",
        "frames",
        "holding",
        "operation_id",
        "overflows",
        "prefix",
        "slow",
    )

    def __init__(
        self,
        context: ConnectionContext,
        operation_id: str,
        bound: int,
        *,
        holding: bool = False,
        feed: Feed | None = None,
    ) -> None:
        self.context = context
        self.feed = feed
        self.operation_id = operation_id
        self.prefix = '{"id":' + json.dumps(operation_id) + ',"type":"next","payload":'
        # Made with the first result and dropped once written: an idle member holds none.
        self.frames: deque[tuple[int, str]] | None = None
        self.bound = bound
        self.ended = False  # no more results will come (the feed is over, or it was slow)
        self.completed = False  # `complete` was sent for it
        self.holding = holding
        self.floor = 0  # results of events up to this one were replayed: not again
        self.dropped = 0
        self.overflows = 0  # times its held results overflowed while it replayed
        self.slow = False  # dropped for falling behind: its connection is being closed

    def push(self, seq: int, payload: str) -> bool:
        """Queue one result; False when the member is too far behind (it is then closed).
        A member still replaying that overflows drops what it held and replays again."""
        if self.ended:
            return False
        if seq <= self.floor:
            self.dropped += 1
            return True
        frames = self.frames
        if frames is None:
            frames = self.frames = deque()
        elif len(frames) >= self.bound:
            if self.holding:  # all of it is in the outbox: the replay goes on to fetch it
                frames.clear()
                self.overflows += 1
            else:
                self.ended = self.slow = True
                self.frames = None
                return False
        frames.append((seq, payload))
        return True

    def release(self, position: int) -> None:
        """The member replayed up to `position`: what the feed delivered up to it goes, and
        so will what it delivers later of those events (the relay may lag the replay)."""
        self.floor = position
        frames = self.frames
        while frames and frames[0][0] <= position:
            frames.popleft()
            self.dropped += 1
        self.holding = False

    def finish(self) -> None:
        """The feed is over: what is queued is written, then the operation completes."""
        self.ended = True

    @property
    def writable(self) -> bool:
        """It has something to write: results, or the `complete` that ends it."""
        if self.holding or self.slow:
            return False
        return bool(self.frames) or (self.ended and not self.completed)

    async def flush(self) -> None:
        """Write what is queued; then, if the feed is over, complete the operation (never
        for a slow member: its connection is closing with 1013, which `complete` could
        overtake)."""
        websocket = self.context.websocket
        frames = self.frames
        # `self.frames is frames`: a member that left (the client completed it) or fell
        # behind while a send waited has dropped its queue: nothing more of it goes out.
        while frames and self.frames is frames and not self.holding and not self.slow:
            await websocket.send_text(self.prefix + frames.popleft()[1] + "}")
        if frames is not None and not frames and self.frames is frames:
            self.frames = None
        # `complete` only once its connection holds it (before, its own task is still
        # running); the connection wakes it again when it starts holding it.
        over = self.ended and not self.slow and not self.frames and not self.completed
        if over and await self.context.complete_operation(self):
            self.completed = True

    def leave(self) -> None:
        """The client completed the operation, or the connection is over."""
        self.ended = self.completed = True  # nothing more goes out under its id
        self.frames = None
        if self.feed is not None:
            self.feed.leave(self)


class Feed:
    """One execution of a subscription operation, shared by its members."""

    def __init__(
        self,
        fanout: Fanout,
        key: Hashable,
        operation: SharedOperation,
        tenant: Tenant,
        first: ConnectionContext,
    ) -> None:
        self.fanout = fanout
        self.key = key
        self.operation = operation
        self.tenant = tenant
        self.members: dict[Member, None] = {}  # insertion-ordered set
        self.started: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.closing = False
        self.seq = 0  # the sequence number of the event being executed
        # Who receives (and is audited for) the result being executed: the members when
        # its event came out of the stream; one who joins meanwhile starts with the next.
        self.audience: list[Member] = []
        self.context = _feed_context(self, first)
        self.task = asyncio.create_task(self._run(), name="fanout-feed")

    def live(self) -> None:
        """The feed's event stream is live: members may start waiting for results."""
        if not self.started.done():
            self.started.set_result(True)

    async def _run(self) -> None:
        operation = self.operation
        over = False  # the stream ended (not cancelled): members complete their operations
        try:
            stream = await operation.schema.stream(
                operation.query,
                variable_values=operation.variables,
                context_value=self.context,
                operation_name=operation.operation_name,
            )
            async with aclosing(stream):
                async for result in stream:
                    if not self.started.done() or not self.started.result():
                        # An error before the stream went live: each member's own pipeline
                        # runs instead and reports it in its own words.
                        break
                    if isinstance(result, PreExecutionError) or not isinstance(
                        result, ExecutionResult
                    ):
                        break
                    self._deliver(encode_result(result))
                self.closing = True
            over = True
        except Exception:
            log.exception("fanout_feed_failed")
            over = True
        finally:
            self.end()
            if not self.started.done():
                self.started.set_result(False)  # members fall back to their own streams
            elif over and self.started.result():
                for member in self.members:
                    member.finish()
                    member.context.wake(member)

    def next_event(self, seq: int) -> None:
        """The stream hands the resolver the event `seq`: fix who its result goes to."""
        self.seq = seq
        self.audience = list(self.members)

    def _deliver(self, payload: str) -> None:
        metrics = self.fanout.counts
        metrics.executions += 1
        for member in self.audience:
            if member not in self.members:
                continue  # left meanwhile
            if member.push(self.seq, payload):
                metrics.deliveries += 1
                if not member.holding:
                    member.context.wake(member)  # its connection's writer sends it
            else:
                metrics.slow_members_closed += 1
                self.leave(member)
                member.context.end_soon(SLOW_MEMBER, SLOW_REASON)

    def end(self) -> None:
        """The feed's stream is over (or the hub closed it): nobody may join it any more."""
        self.closing = True
        self.fanout._forget(self)

    def leave(self, member: Member) -> None:
        if member in self.members:
            del self.members[member]
            self.fanout.counts.replayed_twice_dropped += member.dropped
        if not self.members:
            self.end()
            self.task.cancel()


def _feed_context(feed: Feed, first: ConnectionContext) -> ConnectionContext:
    from api.realtime.connection import FeedContext

    services = dataclasses.replace(first.services, limiter=None)  # members paid already
    return FeedContext(
        request=first.request,
        response=None,
        services=services,
        hub=first.hub,
        feed=feed,
        _tenant=feed.tenant,
    )


class Fanout:
    """The process's shared feeds, by what their members asked."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.feeds: dict[Hashable, Feed] = {}
        self.counts = FanoutMetrics()

    def key(self, tenant: Tenant, operation: SharedOperation) -> Hashable:
        variables = json.dumps(operation.variables or {}, sort_keys=True, default=str)
        return (
            tenant.workspace_id,
            tenant.role,
            tenant.api_token_id is not None,
            operation.query,
            operation.operation_name,
            variables,
        )

    async def follow(
        self, context: ConnectionContext, operation: SharedOperation, tenant: Tenant
    ) -> bool:
        """Join (or start) the feed for this operation: from now on its results are written
        to the member's socket, and the caller's operation task may end (True). False when
        the feed could not start: the caller then streams on its own."""
        feed = self._feed(tenant, operation, context)
        member = Member(context, operation.id, self.settings.realtime_queue_size, feed=feed)
        feed.members[member] = None
        try:
            # Shielded: a member that leaves must not cancel what the others wait for.
            started = await asyncio.shield(feed.started)
        except BaseException:
            feed.leave(member)
            raise
        if not started:
            feed.leave(member)
            return False
        self._detach(context, member)
        return True

    async def resume(
        self,
        context: ConnectionContext,
        operation: SharedOperation,
        tenant: Tenant,
        since: int,
    ) -> AsyncIterator[Envelope]:
        """For an operation with `since`: the events after it from the outbox (yielded, for
        the member's own pipeline to execute), then the results of the feed of `operation`
        (its `since` left out), without a gap or a repeat. Falls back to the member's own
        stream if the feed cannot start."""
        from api.realtime.stream import SinceTooOld, replay

        if since < 0:
            raise SinceTooOld("since is a sequence number: 0 or more", field="since")
        feed = self._feed(tenant, operation, context)
        member = Member(
            context, operation.id, self.settings.realtime_queue_size, holding=True, feed=feed
        )
        feed.members[member] = None  # holds what the feed delivers from now on
        detached = False
        try:
            if not await asyncio.shield(feed.started):
                async for envelope in context._stream(tenant.workspace_id, since):
                    yield envelope
                return
            position = since
            services = context.services
            passes = 0
            while True:
                async for envelope in replay(
                    services.engine, services.settings, tenant.workspace_id, position, strict=True
                ):
                    position = envelope.seq
                    context.fresh_loaders()
                    yield envelope
                if member.overflows == passes:
                    break
                # What it held overflowed while it replayed: replay on from `position`.
                passes = member.overflows
                if passes > self.settings.realtime_max_overflows:
                    self.counts.slow_members_closed += 1
                    await context.end(SLOW_MEMBER, SLOW_REASON)
                    await asyncio.Future()  # the socket is closing: never `complete`
            member.release(position)
            self._detach(context, member)
            detached = True
        finally:
            if not detached:
                feed.leave(member)

    def _detach(self, context: ConnectionContext, member: Member) -> None:
        """The member's pipeline is done: its connection holds it from now on."""
        self.counts.detached += 1
        context.hold(member)
        if member.writable:
            context.wake(member)

    def _feed(self, tenant: Tenant, operation: SharedOperation, first: ConnectionContext) -> Feed:
        key = self.key(tenant, operation)
        feed = self.feeds.get(key)
        if feed is None or feed.closing:
            feed = self.feeds[key] = Feed(self, key, operation, tenant, first)
        return feed

    def _forget(self, feed: Feed) -> None:
        if self.feeds.get(feed.key) is feed:
            del self.feeds[feed.key]

    def metrics(self) -> FanoutMetrics:
        counts = self.counts
        counts.feeds = len(self.feeds)
        counts.members = sum(len(feed.members) for feed in self.feeds.values())
        return dataclasses.replace(counts)

    async def stop(self) -> None:
        """At shutdown, after the hub (whose closing ends each feed with 1012)."""
        feeds = list(self.feeds.values())
        for feed in feeds:
            feed.task.cancel()
        for feed in feeds:
            with contextlib.suppress(BaseException):
                await feed.task


def readers_of(feed: Feed) -> list[ConnectionContext]:
    """Who the result being executed goes to (for the audit trail)."""
    return [member.context for member in feed.audience if not member.ended]
