"""Request id on every log line and response (pure ASGI, so WebSockets pass through)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.security import error_response

log = structlog.get_logger("wealthwise.http")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        # A WebSocket sends no http.response.start: its messages go straight through (and
        # the wrapper is not kept for as long as the socket stays open).
        downstream = send_with_id if scope["type"] == "http" else send
        del send_with_id
        try:
            await self.app(scope, receive, downstream)
        finally:
            if scope["type"] == "http":
                log.info(
                    "request",
                    method=scope.get("method"),
                    path=scope.get("path"),
                    status=status,
                    ms=round((time.perf_counter() - started) * 1000, 1),
                )
            structlog.contextvars.unbind_contextvars("request_id")


class UnexpectedErrors:
    """An exception that escapes the app becomes a masked, coded JSON 500 *inside* the
    request-id and security-header middleware (Starlette's own outermost handler would
    answer before either has added its headers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http":
            return self.app(scope, receive, send)  # no frame of ours held (a WebSocket)
        return self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled_error", path=scope.get("path"))
            if started:  # too late for an answer of our own: let the server drop it
                raise
            response = error_response(500, "INTERNAL_SERVER_ERROR", "Internal server error")
            await response(scope, receive, send)
