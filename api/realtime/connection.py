"""A WebSocket connection's context, its sign-in and its lifetime.

Strawberry builds the context once per connection and shares it with every operation on
it, for as long as the socket stays open. So this context holds no database session:
each use of `db()` is a short transaction of its own under the connection's scope, and
audit events are written at once in their own transactions. DataLoaders are made fresh
for every event a subscription delivers (a cache would go stale across events).

Sign-in happens at `connection_init` (graphql-transport-ws): a token in the payload
(`{"authorization": "Bearer …"}` or `{"token": "…"}`: an access JWT or a `wwt_` API token)
or else the session cookie sent with the upgrade, which the Origin allowlist guarded
(api/security.py). `workspaceId` in the payload (or the `x-workspace-id` header) picks the
workspace. The connection then lives until its access token expires (a timer of its own),
and it registers what keeps it alive with the process's ConnectionRegistry
(api/realtime/registry.py), which every `ws_recheck_seconds` checks for all connections at
once that the session (or API token) and the membership are still there. When they are
not, it closes with 4401 and the client signs in again and resumes with `since`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.websockets import WebSocket, WebSocketState

from api.realtime.deadlines import Entry, deadlines
from api.realtime.fanout import CURRENT_OPERATION, Fanout, Feed, Member, readers_of
from api.realtime.hub import CloseReason, Hub, Subscription, SubscriptionClosed
from api.realtime.registry import ConnectionRegistry, Holder
from api.realtime.stream import current_seq, workspace_stream
from domain.core.db import bind_scope, unit_of_work
from domain.core.errors import DomainError
from domain.identity import api_tokens
from domain.identity.models import AuthSession
from domain.realtime.envelope import Envelope
from schema.context import RequestContext

log = structlog.get_logger(__name__)

SESSION_ENDED = 4401  # graphql-transport-ws "Unauthorized": sign in again, resume with since
TOO_MANY_CONNECTIONS = 4429

# Open connections per user in this process (each API process counts its own).
_open_per_user: Counter[uuid.UUID] = Counter()


class ConnectionRefused(Exception):
    """Refuse a connection_init with a close code of our choosing."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class ConnectionContext(RequestContext):
    over_websocket: ClassVar[bool] = True
    connection_params: dict[str, Any] = field(default_factory=dict)
    hub: Hub | None = None
    registry: ConnectionRegistry | None = None
    fanout: Fanout | None = None
    request_id: str | None = None  # the upgrade's: names this connection in the audit trail
    expires_at: float | None = None  # epoch seconds: the access token's expiry
    _expiry_timer: Entry | None = None
    _background: set[asyncio.Task[Any]] | None = None  # made when first needed
    _counted: uuid.UUID | None = None
    _unregister: Callable[[], None] | None = None
    _closing: bool = False
    # Shared-feed members whose operations this connection holds, by operation id, and
    # those with something to write; the task writing it while there is (fanout.py).
    _members: dict[str, Member] | None = None
    _ready: dict[Member, None] | None = None
    _writer: asyncio.Task[None] | None = None
    # Ends an operation with `complete` (set by the WebSocket handler).
    complete: Callable[[str], Awaitable[None]] | None = None

    @property
    def closing(self) -> bool:
        """The server has begun to close this connection."""
        return self._closing

    @property
    def websocket(self) -> WebSocket:
        assert isinstance(self.request, WebSocket)
        return self.request

    # --- who -------------------------------------------------------------------------

    def access_token(self) -> str | None:
        for name in ("authorization", "Authorization", "token"):
            value = self.connection_params.get(name)
            if isinstance(value, str) and value.strip():
                value = value.strip()
                return value[7:].strip() if value.lower().startswith("bearer ") else value
        return super().access_token()

    def chosen_workspace(self) -> str | None:
        chosen = self.connection_params.get("workspaceId")
        if isinstance(chosen, str) and chosen:
            return chosen
        return super().chosen_workspace()

    async def sign_in(self) -> dict[str, Any]:
        """Resolve the caller at connection_init; the connection_ack payload on success."""
        token = self.access_token()
        if token is None:
            raise ConnectionRefused(SESSION_ENDED, "Sign in first")
        try:
            tenant = await self.tenant()
            self.expires_at = await self._expiry(token)
        except DomainError as error:
            raise ConnectionRefused(SESSION_ENDED, error.message) from None
        limit = self.services.settings.ws_max_connections_per_user
        if _open_per_user[tenant.user_id] >= limit:
            raise ConnectionRefused(
                TOO_MANY_CONNECTIONS, f"At most {limit} open connections per user"
            )
        _open_per_user[tenant.user_id] += 1
        self._counted = tenant.user_id
        if self.registry is not None:
            self._unregister = self.registry.register(self._holder(token), self._ended)
        self._watch_expiry()
        from schema.ids import encode_id

        return {
            "workspaceId": encode_id("Workspace", tenant.workspace_id),
            "role": tenant.role,
            "expiresAt": self.expires_at,
        }

    async def _expiry(self, token: str) -> float | None:
        if api_tokens.is_api_token(token):
            async with self.db() as session:
                access = await api_tokens.authenticate(
                    session, self.services.keyring, token, (await self.tenant()).workspace_id
                )
            return access.expires_at.timestamp() if access.expires_at else None
        return float(self.services.signer.verify(token).expires_at)

    def _holder(self, token: str) -> Holder:
        """What keeps this connection alive, for the registry's batched recheck."""
        tenant = self._tenant
        assert tenant is not None, "signed in"
        if tenant.api_token_id is not None:
            return Holder.api_token(tenant.api_token_id, tenant.workspace_id, tenant.role)
        claims = self.services.signer.verify(token)
        return Holder.person(claims.session_id, tenant.user_id, tenant.workspace_id, tenant.role)

    async def _ended(self, reason: str) -> None:
        """The registry's recheck found the session, token or membership gone."""
        await self.end(SESSION_ENDED, reason)

    def _watch_expiry(self) -> None:
        """End the connection when its access token expires (a timer: no database read;
        the registry rechecks the session, token and membership for all connections).
        An entry in the process's shared timers, not a sleeping task: an idle connection
        holds ~0.1 KB for it instead of ~2 KB (a task, its coroutine and a future)."""
        if self.expires_at is None:
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + max(0.0, self.expires_at - time.time())
        self._expiry_timer = deadlines(loop).call_at(when, self._expired)

    def _expired(self) -> None:
        self._expiry_timer = None
        self.end_soon(SESSION_ENDED, "Session expired: sign in again")

    def _in_background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task that `release` lets finish."""
        task = asyncio.create_task(work)
        if self._background is None:
            self._background = set()
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def end_soon(self, code: int, reason: str) -> None:
        """`end` from code that cannot wait for it (a callback, a feed delivering)."""
        if not self._closing:
            self._in_background(self.end(code, reason))

    # --- database --------------------------------------------------------------------

    @asynccontextmanager
    async def db(self) -> AsyncIterator[AsyncSession]:
        """A short read transaction of its own, under the connection's scope."""
        async with unit_of_work(self.services.engine, write=False) as session:
            if self._tenant is not None:
                await bind_scope(
                    session, workspace_id=self._tenant.workspace_id, user_id=self._tenant.user_id
                )
            yield session

    def _now(self, action: Callable[[AsyncSession], Awaitable[object]]) -> None:
        """Run `action` at once in a transaction of its own (there is no request one)."""
        tenant = self._tenant

        async def run() -> None:
            async with unit_of_work(self.services.engine) as own:
                if tenant is not None:
                    await bind_scope(own, workspace_id=tenant.workspace_id)
                await action(own)

        self._in_background(run())

    def persist_despite_failure(self, action: Callable[[AsyncSession], Awaitable[object]]) -> None:
        self._now(action)

    def before_commit(self, action: Callable[[AsyncSession], Awaitable[object]]) -> None:
        self._now(action)

    def after_commit(self, action: Callable[[AsyncSession], Awaitable[object]]) -> None:
        self._now(action)

    async def finish(self, *, commit: bool) -> None:
        """Nothing to commit: every transaction of a connection is its own."""

    def fresh_loaders(self) -> None:
        """Drop the DataLoaders before each event: a cache must not outlive one event."""
        self._loaders = None

    # --- events ----------------------------------------------------------------------

    async def event_position(self) -> int:
        tenant = await self.tenant()
        return await current_seq(self.services.engine, tenant.workspace_id)

    async def events(self, since: int | None, *, share: bool = False) -> AsyncIterator[Envelope]:
        """The workspace's events after `since`. With `share` (a resolver whose results
        depend only on what the fan-out keys by) the connection joins the process's shared
        feed for its operation (api/realtime/fanout.py): the feed's results are written to
        the socket directly, and only a `since` replay is yielded here."""
        tenant = await self.tenant()
        operation = CURRENT_OPERATION.get()
        fanout = self.fanout
        if share and fanout is not None and operation is not None:
            if since is None:
                if await fanout.follow(self, operation, tenant):
                    return
            elif (live := operation.without_since()) is not None:
                async for envelope in fanout.resume(self, live, tenant, since):
                    yield envelope
                return
        async for envelope in self._stream(tenant.workspace_id, since):
            yield envelope

    def _stream_ready(self) -> None:
        """The stream is live (a feed's members may start waiting)."""

    async def _stream(self, workspace_id: uuid.UUID, since: int | None) -> AsyncIterator[Envelope]:
        assert self.hub is not None, "the hub starts with the app"
        watched: list[Subscription] = []

        def watch(subscription: Subscription) -> None:
            # If the hub closes this subscriber while it is stuck sending, close the socket
            # (a callback, not a task waiting for it: far less memory per subscription).
            watched.append(subscription)
            subscription.on_closed(self._closed_by_hub)

        try:
            async for envelope in workspace_stream(
                self.hub,
                self.services.engine,
                self.services.settings,
                workspace_id,
                since=since,
                watch=watch,
                ready=self._stream_ready,
            ):
                self.fresh_loaders()
                yield envelope
        except SubscriptionClosed as closed:
            await self.end(closed.reason.close_code, _reason(closed.reason))
            # The connection is closing with a code the client retries: never end the
            # operation as complete (a `complete` could overtake a close frame that waits
            # behind unsent data). The operation is cancelled as the socket goes.
            await asyncio.Future()
        finally:
            for subscription in watched:
                subscription.on_closed(None)

    def _closed_by_hub(self, reason: CloseReason) -> None:
        self.end_soon(reason.close_code, _reason(reason))

    # --- shared-feed members ---------------------------------------------------------

    def hold(self, member: Member) -> None:
        """The member's operation joined its feed: its own task ends, the connection
        keeps the member until the client completes it or the connection ends."""
        if self._members is None:
            self._members = {}
        self._members[member.operation_id] = member

    def held(self, operation_id: str) -> Member | None:
        return self._members.get(operation_id) if self._members is not None else None

    def let_go(self, operation_id: str) -> bool:
        """The client completed a held operation: it leaves its feed. False when the
        operation is no held one."""
        member = self._members.pop(operation_id, None) if self._members else None
        if member is None:
            return False
        member.leave()
        if self._ready is not None:
            self._ready.pop(member, None)
        return True

    def let_all_go(self) -> None:
        """The connection is over."""
        members, self._members = self._members, None
        for member in (members or {}).values():
            member.leave()
        self._ready = None
        if self._writer is not None:
            self._writer.cancel()

    def wake(self, member: Member) -> None:
        """The member has something to write: one task per connection writes it (and
        whatever else its members queue meanwhile), then ends."""
        if self._ready is None:
            self._ready = {}
        self._ready[member] = None
        if self._writer is None and not self._closing:
            self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        try:
            ready = self._ready
            while ready:
                member = next(iter(ready))
                del ready[member]
                await member.flush()
        except Exception as error:  # the socket went: the handler's shutdown lets go
            log.debug("websocket_write_failed", error=str(error))
        finally:
            self._writer = None

    async def complete_operation(self, member: Member) -> bool:
        """The member's feed is over and all it queued written: `complete`, if this
        connection holds it (False otherwise: not yet, or it left)."""
        if self._members is None or self._members.get(member.operation_id) is not member:
            return False
        del self._members[member.operation_id]
        if self.complete is not None:
            await self.complete(member.operation_id)
        return True

    # --- the end ---------------------------------------------------------------------

    async def end(self, code: int, reason: str) -> None:
        """Close the socket with `code` (once); Strawberry then ends every operation.

        The close frame waits behind whatever the socket still has to send, for as long as
        that takes (this returns after 5 s at most): a client that stopped reading gets it
        when it reads again, and resumes with `since`. A close given up on is never sent;
        that client would find its socket open and every subscription silently gone."""
        if self._closing:
            return
        self._closing = True
        log.info("websocket_closed_by_server", code=code, reason=reason)
        if self.websocket.application_state is WebSocketState.CONNECTED:
            closing = self._in_background(self._close(code, reason))
            await asyncio.wait([closing], timeout=5)

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.websocket.close(code=code, reason=reason)

    async def release(self) -> None:
        """Called once the connection is over."""
        if self._unregister is not None:
            self._unregister()
            self._unregister = None
        if self._counted is not None:
            _open_per_user[self._counted] -= 1
            if _open_per_user[self._counted] <= 0:
                del _open_per_user[self._counted]
            self._counted = None
        if self._expiry_timer is not None:
            deadlines(asyncio.get_running_loop()).cancel(self._expiry_timer)
            self._expiry_timer = None
        for task in list(self._background or ()):  # audit events being written: let them land
            with contextlib.suppress(Exception):
                await task


@dataclass
class FeedContext(ConnectionContext):
    """The context a shared feed executes under: its members' workspace and role, no
    socket of its own (the request is its first member's, for reading only), no rate-limit
    charge (each member paid for its subscribe). Ending it ends its members' connections."""

    feed: Feed | None = None

    def readers(self) -> list[RequestContext]:
        assert self.feed is not None
        return list(readers_of(self.feed))

    async def auth(self) -> AuthSession:
        """A feed answers for many people at once: nothing it executes may depend on who
        asks beyond the workspace and role it is keyed by (this fails loudly instead)."""
        raise RuntimeError("a shared subscription feed has no single caller")

    async def user_id(self) -> uuid.UUID:
        raise RuntimeError("a shared subscription feed has no single caller")

    @asynccontextmanager
    async def db(self) -> AsyncIterator[AsyncSession]:
        """Scoped to the workspace only: no member's user."""
        async with unit_of_work(self.services.engine, write=False) as session:
            assert self._tenant is not None
            await bind_scope(session, workspace_id=self._tenant.workspace_id)
            yield session

    async def events(self, since: int | None, *, share: bool = False) -> AsyncIterator[Envelope]:
        assert self.feed is not None
        tenant = await self.tenant()
        async for envelope in self._stream(tenant.workspace_id, since):
            self.feed.next_event(envelope.seq)  # who the result about to come goes to
            yield envelope

    def _stream_ready(self) -> None:
        assert self.feed is not None
        self.feed.live()

    async def end(self, code: int, reason: str) -> None:
        """The hub closed the feed's stream: no one joins it any more, and every member's
        connection closes with the (retryable) code."""
        if self._closing or self.feed is None:
            return
        self._closing = True
        self.feed.end()
        members = [member.context for member in self.feed.members]
        await asyncio.gather(*(member.end(code, reason) for member in members))

    async def release(self) -> None:
        """Nothing is held: no socket, no count, no registration."""


def _reason(reason: CloseReason) -> str:
    if reason is CloseReason.SLOW_CONSUMER:
        return "Too slow to keep up: reconnect with since"
    return "Server restarting: reconnect with since"


def open_connections(user_id: uuid.UUID) -> int:
    return _open_per_user[user_id]
