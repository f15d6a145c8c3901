"""The HTTP edge's walls: CSRF (Apollo's rule), the Origin allowlist, the request body size
limit and the security headers. Pure ASGI middleware, so WebSockets and streaming pass."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Collection, Iterable, Mapping

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.http.websocket_origin import (
    is_same_origin,
    normalize_allowed_origins,
    normalize_origin,
)

log = structlog.get_logger("wealthwise.security")


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """A GraphQL-shaped error answered before (or instead of) any GraphQL execution."""
    body = {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}
    return JSONResponse(body, status_code=status, headers=headers)


# ---------------------------------------------------------------- CSRF

# Apollo Server's csrfPrevention (preventCsrf.ts): a request whose Content-Type a browser may
# send cross-site without a CORS preflight (or that has none) must carry one of these headers,
# which no simple cross-site form or fetch can set.
CSRF_PREFLIGHT_HEADERS = ("x-apollo-operation-name", "apollo-require-preflight")
NON_PREFLIGHTED_CONTENT_TYPES = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
)
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MIME_ESSENCE = re.compile(rf"^[\t\n\r ]*({_TOKEN})/({_TOKEN})[\t\n\r ]*(?:;|$)")


def csrf_safe(headers: Headers) -> bool:
    """True unless the request could have come from a simple cross-site form or fetch."""
    content_type = headers.get("content-type")
    if content_type is not None:
        match = _MIME_ESSENCE.match(content_type)
        if match is None:
            return True  # not a valid MIME type, so not CORS-safelisted: it was preflighted
        if f"{match[1]}/{match[2]}".lower() not in NON_PREFLIGHTED_CONTENT_TYPES:
            return True
    return any(headers.get(name) for name in CSRF_PREFLIGHT_HEADERS)


def csrf_rejected() -> JSONResponse:
    return error_response(
        400,
        "CSRF_REJECTED",
        "This request has been blocked as a potential cross-site request forgery: send it "
        "as application/json, or add a non-empty `apollo-require-preflight` or "
        "`x-apollo-operation-name` header",
    )


# ---------------------------------------------------------------- Origin allowlist

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class OriginAllowlist:
    """Refuses WebSocket upgrades and state-changing requests from other origins.

    An origin is allowed when it is in the list or is the origin the request was sent to
    (its Host: a page on another site cannot make the browser send a matching pair, and a
    DNS-rebound page that can carries none of our cookies). A WebSocket handshake without
    an Origin comes from a non-browser client; it is refused only when it carries a session
    cookie, since browsers always send Origin and cookies are the credential at risk.
    """

    def __init__(
        self, app: ASGIApp, allowed_origins: Iterable[str], session_cookies: Collection[str]
    ) -> None:
        self.app = app
        self.allowed = normalize_allowed_origins(allowed_origins)
        self.session_cookies = session_cookies

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Decided before anything is awaited: what is allowed goes straight to the app, with
        # no frame of ours held for as long as a WebSocket stays open.
        if scope["type"] == "websocket" and not self.websocket_allowed(HTTPConnection(scope)):
            # Closing before accepting makes the server answer the handshake with 403.
            return WebSocket(scope, receive, send).close(code=1008)
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if origin is not None and not self.origin_allowed(origin, headers):
                log.warning("origin_refused", origin=origin, path=scope.get("path"))
                response = error_response(
                    403, "ORIGIN_NOT_ALLOWED", "Requests from this origin are not allowed"
                )
                return response(scope, receive, send)
        return self.app(scope, receive, send)

    def origin_allowed(self, origin: str, headers: Headers) -> bool:
        if is_same_origin(origin, headers.get("host")):
            return True
        return "*" in self.allowed or normalize_origin(origin) in self.allowed

    def websocket_allowed(self, connection: HTTPConnection) -> bool:
        origin = connection.headers.get("origin")
        if origin is None:
            allowed = not any(name in connection.cookies for name in self.session_cookies)
        else:
            allowed = self.origin_allowed(origin, connection.headers)
        if not allowed:
            log.warning("websocket_origin_refused", origin=origin, path=connection.url.path)
        return allowed


# ---------------------------------------------------------------- body size


class _BodyTooLarge(Exception):
    pass


class RequestBodyLimit:
    """413 for a body over `max_bytes`: by its Content-Length before reading anything, and
    for a chunked body as soon as the bytes received pass the limit (the app never holds
    more than `max_bytes`). Hand-written: Starlette and uvicorn have no such limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http":
            return self.app(scope, receive, send)  # no frame of ours held (a WebSocket)
        return self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self.too_large()(scope, receive, send)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _BodyTooLarge:
            if started:
                raise
            await self.too_large()(scope, receive, send)

    def too_large(self) -> JSONResponse:
        log.warning("request_body_too_large", limit=self.max_bytes)
        return error_response(
            413,
            "PAYLOAD_TOO_LARGE",
            f"The request body is larger than {self.max_bytes} bytes",
            headers={"connection": "close"},
        )


# ---------------------------------------------------------------- headers

HSTS = "max-age=63072000; includeSubDomains"
BASE_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": (
        "accelerometer=(), camera=(), display-capture=(), fullscreen=(), geolocation=(), "
        "gyroscope=(), magnetometer=(), microphone=(), midi=(), payment=(), usb=()"
    ),
}
# JSON, CSS, scripts: nothing in them may load anything or be framed.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")


def _socket_sources(host: str | None) -> str:
    """ws:/wss: of the request's own host, for subscriptions (when the Host is well-formed)."""
    if host is None or not _HOST.match(host):
        return ""
    return f" ws://{host} wss://{host}"


def web_csp(host: str | None) -> str:
    """The web client's policy: its own files only, no inline script or style."""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"font-src 'self'; connect-src 'self'{_socket_sources(host)}; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def _sha256(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def graphiql_csp(html: str, host: str | None) -> str:
    """GraphiQL's policy, read off the page Strawberry renders: its CDN scripts by exact URL
    (they also carry SRI hashes) and its inline script by hash. Styles allow 'unsafe-inline'
    since GraphiQL's components set inline styles; no image, font or connect source outside
    this origin lets injected CSS send anything out."""
    scripts = re.findall(r"<script\b[^>]*\bsrc=\"([^\"]+)\"", html)
    inline = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    links = re.findall(r"<link\b[^>]*>", html)
    sheets = [
        href
        for link in links
        if 'rel="stylesheet"' in link
        for href in re.findall(r"\bhref=\"([^\"]+)\"", link)
    ]
    script_src = " ".join([*scripts, *map(_sha256, inline)])
    style_src = " ".join(["'self'", *sheets, "'unsafe-inline'"])
    return (
        f"default-src 'none'; script-src {script_src}; style-src {style_src}; "
        "img-src 'self' data:; font-src 'self' data: https://unpkg.com; "
        f"connect-src 'self'{_socket_sources(host)}; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


class SecurityHeaders:
    """Security headers on every HTTP response; HSTS only when the request came over TLS.
    A response that sets its own Content-Security-Policy (GraphiQL) keeps it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http":
            return self.app(scope, receive, send)  # no frame of ours held (a WebSocket)
        return self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        host = Headers(scope=scope).get("host")
        tls = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", []))
                headers = MutableHeaders(scope=message)
                if "content-security-policy" not in headers:
                    html = headers.get("content-type", "").startswith("text/html")
                    headers["content-security-policy"] = web_csp(host) if html else API_CSP
                for name, value in BASE_HEADERS.items():
                    headers.setdefault(name, value)
                if tls:
                    headers["strict-transport-security"] = HSTS
            await send(message)

        await self.app(scope, receive, send_with_headers)
