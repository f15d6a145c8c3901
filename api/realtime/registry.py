"""The WebSocket connections of this process and their one batched recheck.

Each signed-in connection registers what keeps it alive: a person's auth session (with the
user, the workspace and the role it signed in with), or an API token (with its workspace and
role). Every `ws_recheck_seconds` one short read transaction answers for all of them at
once which are no longer allowed (the session or token revoked, expired or gone, the
membership gone, the role changed), and those connections are told to end. With 10,000
connections that is one transaction per interval instead of 10,000.

On PostgreSQL row-level security shows the API's role one user's sessions and one
workspace's memberships per transaction, so the check goes through two owner-defined
functions (migration 0010) that return only the positions of the dead entries and a reason.
On SQLite (no row-level security) the same rules run on rows read directly.

A check that fails for the server's own reasons (a busy pool, the database down) ends
nothing and runs again at the next interval: it is never taken for a sign-out.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select

from domain.core.db import unit_of_work
from domain.core.models import as_utc, utcnow
from domain.identity.models import ApiToken, ApiTokenScope, AuthSession, Membership, Role

log = structlog.get_logger(__name__)

CHUNK = 1000  # entries per function call (a few calls in the one transaction)

# Why an entry is dead; each becomes the 4401 close reason.
REASONS = {
    "session": "This session has ended",
    "token": "The API token is invalid, revoked or expired",
    "membership": "Workspace not found",
    "role": "Your role in this workspace changed: connect again",
}

Ender = Callable[[str], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class Holder:
    """What keeps a connection alive: a person's session, or an API token."""

    workspace_id: uuid.UUID
    role: str
    session_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    token_id: uuid.UUID | None = None

    @classmethod
    def person(
        cls, session_id: uuid.UUID, user_id: uuid.UUID, workspace_id: uuid.UUID, role: str
    ) -> Holder:
        return cls(workspace_id, role, session_id=session_id, user_id=user_id)

    @classmethod
    def api_token(cls, token_id: uuid.UUID, workspace_id: uuid.UUID, role: str) -> Holder:
        return cls(workspace_id, role, token_id=token_id)


class ConnectionRegistry:
    """One per API process (the app's lifespan holds it)."""

    def __init__(self, engine: AsyncEngine, recheck_seconds: float) -> None:
        self.engine = engine
        self.recheck_seconds = recheck_seconds
        # Connections sharing a holder (one user's tabs) are checked as one entry.
        self._held: dict[Holder, dict[int, Ender]] = {}
        self._next = 0
        self._task: asyncio.Task[None] | None = None
        self._ending: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return sum(len(enders) for enders in self._held.values())

    def register(self, holder: Holder, end: Ender) -> Callable[[], None]:
        """Register a connection; returns the function that unregisters it."""
        self._next += 1
        handle = self._next
        self._held.setdefault(holder, {})[handle] = end

        def unregister() -> None:
            enders = self._held.get(holder)
            if enders is not None:
                enders.pop(handle, None)
                if not enders:
                    del self._held[holder]

        return unregister

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._ending):
            task.cancel()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.recheck_seconds)
            try:
                await self.check_once()
            except Exception as error:  # asyncio.CancelledError is no Exception
                log.warning(
                    "websocket_recheck_failed",
                    error=repr(error),
                    connections=len(self),
                    retry_in=self.recheck_seconds,
                )

    async def check_once(self) -> int:
        """Recheck every registered connection in one read transaction; end the dead ones.
        Returns how many connections were told to end. Raises when the check cannot run."""
        holders = list(self._held)
        if not holders:
            return 0
        async with unit_of_work(self.engine, write=False) as session:
            dead = await dead_holders(session, holders)
        ended = 0
        for holder, reason in dead.items():
            for end in list(self._held.pop(holder, {}).values()):
                task = asyncio.create_task(end(REASONS[reason]))
                self._ending.add(task)
                task.add_done_callback(self._ending.discard)
                ended += 1
        if ended:
            log.info("websocket_recheck_ended", connections=ended, checked=len(holders))
        return ended


async def dead_holders(session: AsyncSession, holders: Sequence[Holder]) -> dict[Holder, str]:
    """Which of `holders` are no longer allowed, and why (a key of REASONS)."""
    people = [h for h in holders if h.session_id is not None]
    tokens = [h for h in holders if h.token_id is not None]
    dead: dict[Holder, str] = {}
    postgres = (await session.connection()).dialect.name == "postgresql"
    for start in range(0, len(people), CHUNK):
        chunk = people[start : start + CHUNK]
        found = await (_pg_sessions if postgres else _sqlite_sessions)(session, chunk)
        dead.update(found)
    for start in range(0, len(tokens), CHUNK):
        chunk = tokens[start : start + CHUNK]
        found = await (_pg_tokens if postgres else _sqlite_tokens)(session, chunk)
        dead.update(found)
    return dead


_UUIDS = postgresql.ARRAY(sa.Uuid())
_TEXTS = postgresql.ARRAY(sa.Text())
_PG_SESSIONS = sa.text(
    "SELECT pos, reason FROM ww_ws_dead_sessions(:session_ids, :user_ids, :workspace_ids, :roles)"
).bindparams(
    sa.bindparam("session_ids", type_=_UUIDS),
    sa.bindparam("user_ids", type_=_UUIDS),
    sa.bindparam("workspace_ids", type_=_UUIDS),
    sa.bindparam("roles", type_=_TEXTS),
)
_PG_TOKENS = sa.text(
    "SELECT pos, reason FROM ww_ws_dead_tokens(:token_ids, :workspace_ids, :roles)"
).bindparams(
    sa.bindparam("token_ids", type_=_UUIDS),
    sa.bindparam("workspace_ids", type_=_UUIDS),
    sa.bindparam("roles", type_=_TEXTS),
)


async def _pg_sessions(session: AsyncSession, chunk: list[Holder]) -> dict[Holder, str]:
    rows = await session.execute(
        _PG_SESSIONS,
        {
            "session_ids": [h.session_id for h in chunk],
            "user_ids": [h.user_id for h in chunk],
            "workspace_ids": [h.workspace_id for h in chunk],
            "roles": [h.role for h in chunk],
        },
    )
    return {chunk[pos - 1]: reason for pos, reason in rows}


async def _pg_tokens(session: AsyncSession, chunk: list[Holder]) -> dict[Holder, str]:
    rows = await session.execute(
        _PG_TOKENS,
        {
            "token_ids": [h.token_id for h in chunk],
            "workspace_ids": [h.workspace_id for h in chunk],
            "roles": [h.role for h in chunk],
        },
    )
    return {chunk[pos - 1]: reason for pos, reason in rows}


# SQLite has no row-level security: the same rules as migration 0010's functions, on rows
# read directly (two or three queries per chunk).


async def _roles(
    session: AsyncSession, user_ids: set[uuid.UUID]
) -> dict[tuple[uuid.UUID, uuid.UUID], str]:
    """(user, workspace) -> role, for every membership of these users."""
    if not user_ids:
        return {}
    rows = await session.execute(
        select(Membership.user_id, Membership.workspace_id, Membership.role).where(
            col(Membership.user_id).in_(user_ids)
        )
    )
    return {(user, workspace): role for user, workspace, role in rows}


async def _sqlite_sessions(session: AsyncSession, chunk: list[Holder]) -> dict[Holder, str]:
    rows = await session.execute(
        select(AuthSession.id, AuthSession.user_id, AuthSession.revoked_at).where(
            col(AuthSession.id).in_({h.session_id for h in chunk})
        )
    )
    live = {sid: user for sid, user, revoked in rows if revoked is None}
    roles = await _roles(session, {h.user_id for h in chunk if h.user_id is not None})
    dead: dict[Holder, str] = {}
    for holder in chunk:
        assert holder.session_id is not None and holder.user_id is not None
        role = roles.get((holder.user_id, holder.workspace_id))
        if live.get(holder.session_id) != holder.user_id:
            dead[holder] = "session"
        elif role is None:
            dead[holder] = "membership"
        elif role != holder.role:
            dead[holder] = "role"
    return dead


async def _sqlite_tokens(session: AsyncSession, chunk: list[Holder]) -> dict[Holder, str]:
    rows = (
        await session.execute(
            select(ApiToken).where(col(ApiToken.id).in_({h.token_id for h in chunk}))
        )
    ).scalars()
    found = {row.id: row for row in rows}
    roles = await _roles(session, {row.created_by for row in found.values()})
    now = utcnow()
    dead: dict[Holder, str] = {}
    for holder in chunk:
        row = found.get(holder.token_id) if holder.token_id is not None else None
        if (
            row is None
            or row.revoked_at is not None
            or (row.expires_at is not None and as_utc(row.expires_at) <= now)
            or row.workspace_id != holder.workspace_id
        ):
            dead[holder] = "token"
            continue
        creator_role = roles.get((row.created_by, row.workspace_id))
        if creator_role is None:
            dead[holder] = "membership"
            continue
        # As api_tokens.authenticate: min(the creator's role, the scope's).
        effective = (
            Role.VIEWER
            if row.scope == ApiTokenScope.READ.value or creator_role == Role.VIEWER.value
            else Role.MEMBER
        )
        if effective.value != holder.role:
            dead[holder] = "role"
    return dead
