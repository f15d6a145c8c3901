"""The per-request context: one database session (serialised), the caller, the tenant."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from starlette.requests import HTTPConnection
from starlette.responses import Response
from strawberry.types import Info as StrawberryInfo

from domain.core.db import SCOPE_INFO, session_for, unit_of_work
from domain.core.errors import Forbidden, Unauthenticated, WebSocketRequired
from domain.core.keys import Keyring
from domain.core.settings import Settings
from domain.core.tenancy import Tenant
from domain.identity import api_tokens
from domain.identity import service as identity
from domain.identity.models import AuthSession
from domain.identity.tokens import TokenSigner

if TYPE_CHECKING:
    from domain.realtime.envelope import Envelope
    from schema.cost import CostGate
    from schema.ledger.loaders import LedgerLoaders

ACCESS_COOKIE = "ww_access"
REFRESH_COOKIE = "ww_refresh"
WORKSPACE_HEADER = "x-workspace-id"


@dataclass
class AppServices:
    """What every request shares; built once in the app's lifespan."""

    settings: Settings
    engine: AsyncEngine
    keyring: Keyring
    signer: TokenSigner
    # Charges each operation's cost to the caller's rate-limit budgets (api/ratelimit.py).
    limiter: CostGate | None = None


async def cursor_key(session: AsyncSession, keyring: Keyring) -> bytes:
    index = await keyring.index_key(session)  # cached by the keyring after the first read
    return hmac.new(index, b"wealthwise-cursor", hashlib.sha256).digest()


def cookie_name(request: HTTPConnection, name: str) -> str:
    # The scope's scheme is what `request.url.scheme` reads, without building the URL: a
    # WebSocket would keep that URL for as long as it is open (~0.6 KB).
    scheme = request.scope.get("scheme", "http")
    return f"__Host-{name}" if scheme in ("https", "wss") else name


def access_token(request: HTTPConnection) -> str | None:
    """The Bearer token of the Authorization header, else the access cookie."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.cookies.get(cookie_name(request, ACCESS_COOKIE))


@dataclass
class RequestContext:
    request: HTTPConnection
    response: Response | None
    services: AppServices
    write: bool = False
    over_websocket: ClassVar[bool] = False
    _session: AsyncSession | None = None
    # Made when first needed: a WebSocket's context (one per open connection, for hours)
    # never uses them, and each empty one costs memory there.
    _lock: asyncio.Lock | None = None
    _auth: AuthSession | None = None
    _tenant: Tenant | None = None
    _loaders: LedgerLoaders | None = None
    _durable: list[Callable[[AsyncSession], Awaitable[object]]] | None = None
    _before_commit: list[Callable[[AsyncSession], Awaitable[object]]] | None = None
    _after_commit: list[Callable[[AsyncSession], Awaitable[object]]] | None = None

    @asynccontextmanager
    async def db(self) -> AsyncIterator[AsyncSession]:
        """The request's session, one user at a time (sibling resolvers run concurrently)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._session is None:
                self._session = session_for(self.services.engine, write=self.write)
            yield self._session

    def persist_despite_failure(self, action: Callable[[AsyncSession], Awaitable[object]]) -> None:
        """Run `action` in a transaction of its own after the request ends, even on error
        (security state such as a revoked session must survive the request's rollback)."""
        self._durable = [*(self._durable or ()), action]

    def before_commit(self, action: Callable[[AsyncSession], Awaitable[object]]) -> None:
        """Run `action` in the request's own transaction just before it commits (only if it
        is about to commit: the audit event of a successful mutation)."""
        self._before_commit = [*(self._before_commit or ()), action]

    def after_commit(self, action: Callable[[AsyncSession], Awaitable[object]]) -> None:
        """Run `action` in a transaction of its own once the request has committed."""
        self._after_commit = [*(self._after_commit or ()), action]

    async def finish(self, *, commit: bool) -> None:
        session, self._session = self._session, None
        before, self._before_commit = self._before_commit or [], None
        after, self._after_commit = self._after_commit or [], None
        if session is None and commit and before:
            session = session_for(self.services.engine, write=True)
        if session is not None:
            try:
                if commit:
                    for action in before:
                        await action(session)
                    await session.commit()
                else:
                    await session.rollback()
            finally:
                await session.close()
        durable, self._durable = self._durable or [], None
        scope = dict(session.info.get(SCOPE_INFO, {})) if session is not None else {}
        for action in [*durable, *after] if commit else durable:
            async with unit_of_work(self.services.engine) as own:
                own.info[SCOPE_INFO] = dict(scope)  # same row-level-security scope
                await action(own)

    async def cursor_key(self) -> bytes:
        """Signs pagination cursors. Derived from the blind-index key, which a KEK rotation
        re-wraps but never replaces, so cursors survive key rotations."""
        async with self.db() as session:
            return await cursor_key(session, self.services.keyring)

    def resolved(self) -> tuple[AuthSession | None, Tenant | None]:
        """Who the request has been found to act as so far (no query): for the audit trail."""
        return self._auth, self._tenant

    def access_token(self) -> str | None:
        return access_token(self.request)

    async def auth(self) -> AuthSession:
        if self._auth is None:
            token = self.access_token()
            if token is None:
                raise Unauthenticated("Sign in first")
            if api_tokens.is_api_token(token):
                raise Forbidden("An API token may use the ledger only: sign in as a person")
            async with self.db() as session:
                self._auth = await identity.resolve_access(session, self.services.signer, token)
        return self._auth

    async def user_id(self) -> uuid.UUID:
        return (await self.auth()).user_id

    def chosen_workspace(self) -> str | None:
        """The workspace the caller asks for (its global id), if it names one."""
        return self.request.headers.get(WORKSPACE_HEADER)

    async def tenant(self) -> Tenant:
        if self._tenant is None:
            chosen = self.chosen_workspace()
            workspace_id = _parse_workspace(chosen) if chosen else None
            token = self.access_token()
            if token is not None and api_tokens.is_api_token(token):
                self._tenant = await self._token_tenant(token, workspace_id)
                return self._tenant
            if self._auth is None and token is not None:
                async with self.db() as session:
                    self._auth, self._tenant = await identity.resolve_access_and_tenant(
                        session, self.services.signer, self.services.keyring, token, workspace_id
                    )
                return self._tenant
            user_id = await self.user_id()
            async with self.db() as session:
                self._tenant = await identity.open_tenant(
                    session, self.services.keyring, user_id, workspace_id
                )
        return self._tenant

    async def _token_tenant(self, token: str, workspace_id: uuid.UUID | None) -> Tenant:
        async with self.db() as session:
            access = await api_tokens.authenticate(
                session, self.services.keyring, token, workspace_id
            )
        if access.stale_last_used:
            tenant = access.tenant
            self.persist_despite_failure(
                lambda own: api_tokens.touch(own, tenant.workspace_id, access.token_id)
            )
        return access.tenant

    def events(self, since: int | None, *, share: bool = False) -> AsyncIterator[Envelope]:
        """The caller's workspace events after `since`: only a WebSocket connection has them."""
        raise WebSocketRequired()

    def readers(self) -> list[RequestContext]:
        """Whose reads this context's resolvers make, for the audit trail: the caller, or
        every member of a shared subscription feed (api/realtime/fanout.py)."""
        return [self]

    async def event_position(self) -> int:
        """The workspace's last event sequence number now: only a WebSocket connection."""
        raise WebSocketRequired()

    @property
    def loaders(self) -> LedgerLoaders:
        if self._loaders is None:
            from schema.ledger.loaders import LedgerLoaders

            self._loaders = LedgerLoaders(self)
        return self._loaders


def _parse_workspace(value: str) -> uuid.UUID:
    from schema.ids import decode_id

    return decode_id(value, "Workspace")


Info = StrawberryInfo[RequestContext, Any]
