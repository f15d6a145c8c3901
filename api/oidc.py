"""Sign in with Google, GitHub or any OpenID Connect provider (authlib's Starlette client).

`GET /auth/oidc/{provider}/login` redirects to the provider: authorization code with PKCE
(S256), a state and (OIDC) a nonce, which authlib keeps in a short-lived signed cookie.
`GET /auth/oidc/{provider}/callback` checks the state, exchanges the code with the PKCE
verifier, checks the ID token (signature against the provider's JWKS, iss, aud, exp, nonce),
signs the user in like `login` does and redirects to `/`.

A browser follows these redirects, so failures redirect too: to `/?login_error=CODE`, which
the web client shows. Nothing is created and no session starts on a failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib
import uuid
import warnings
from typing import Any
from urllib.parse import urlencode

import httpx
import structlog
from authlib.deprecate import AuthlibDeprecationWarning
from joserfc.errors import JoseError
from sqlalchemy.exc import IntegrityError
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from api.ratelimit import RateLimiter
from domain.audit.models import ActorKind, Outcome
from domain.audit.service import record_system_event
from domain.core.db import unit_of_work
from domain.core.errors import DomainError
from domain.core.settings import Settings
from domain.identity import oidc, service
from schema.context import AppServices
from schema.identity.api import set_session_cookies

# authlib 1.9 prefers httpx2 and, finding only httpx (which we lock), warns once at import
# that the fallback is deprecated: silence exactly that warning until httpx2 is locked.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.base_client.errors import MismatchingStateError
    from authlib.integrations.starlette_client import OAuth, OAuthError

log = structlog.get_logger(__name__)

PREFIX = "/auth/oidc"
STATE_SECONDS = 600  # a sign-in must finish within ten minutes
PROVIDER_TIMEOUT_SECONDS = 10

RATE_LIMITED = "RATE_LIMITED"
# The `login_error` codes (README: "Sign in with Google, GitHub or any OIDC provider").
UNKNOWN_PROVIDER = "UNKNOWN_PROVIDER"
PROVIDER_UNAVAILABLE = "PROVIDER_UNAVAILABLE"
PROVIDER_DENIED = "PROVIDER_DENIED"
STATE_MISMATCH = "STATE_MISMATCH"
TOKEN_EXCHANGE_FAILED = "TOKEN_EXCHANGE_FAILED"
INVALID_ID_TOKEN = "INVALID_ID_TOKEN"
EMAIL_NOT_VERIFIED = "EMAIL_NOT_VERIFIED"
LOGIN_FAILED = "LOGIN_FAILED"


def _network_errors() -> tuple[type[Exception], ...]:
    """authlib talks to providers through httpx2 when installed, else through httpx."""
    errors: list[type[Exception]] = [httpx.HTTPError]
    with contextlib.suppress(ImportError):
        errors.append(importlib.import_module("httpx2").HTTPError)
    return tuple(errors)


NETWORK_ERRORS = _network_errors()
# Discovery failing, or a discovery document without an authorization endpoint.
DISCOVERY_ERRORS: tuple[type[Exception], ...] = (*NETWORK_ERRORS, ValueError, RuntimeError)


class LoginRefused(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class OidcStateCookie:
    """authlib keeps state, PKCE verifier and nonce in `request.session`: a signed cookie
    for /auth/oidc only, SameSite=Lax (the provider's redirect back is a cross-site top-level
    GET), HttpOnly, Secure and `__Secure-` prefixed over TLS, valid ten minutes."""

    def __init__(self, app: ASGIApp, secret: str) -> None:
        self.tls = SessionMiddleware(
            app,
            secret_key=secret,
            session_cookie="__Secure-ww_oidc",
            max_age=STATE_SECONDS,
            path=PREFIX,
            same_site="lax",
            https_only=True,
        )
        self.plain = SessionMiddleware(
            app,
            secret_key=secret,
            session_cookie="ww_oidc",
            max_age=STATE_SECONDS,
            path=PREFIX,
            same_site="lax",
            https_only=False,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chosen = self.tls if scope.get("scheme") in ("https", "wss") else self.plain
        await chosen(scope, receive, send)


def failure(code: str) -> RedirectResponse:
    return RedirectResponse("/?" + urlencode({"login_error": code}), status_code=303)


class OidcLogin:
    """The provider sign-in routes, built once per app from the settings."""

    def __init__(self, services: AppServices, settings: Settings) -> None:
        self.services = services
        self.public_url = settings.public_url.rstrip("/") if settings.public_url else None
        self.providers = {p.name: p for p in oidc.configured_providers(settings)}
        self.oauth = OAuth()
        for provider in self.providers.values():
            self._register(provider)
        # Derived from the KEK like the cursor key: no extra secret to manage.
        kek = services.keyring.kek.secret
        self.state_secret = hmac.new(kek, b"wealthwise-oidc-state", hashlib.sha256).hexdigest()

    def _register(self, provider: oidc.OidcProvider) -> None:
        client_kwargs: dict[str, Any] = {
            "scope": provider.scopes,
            "code_challenge_method": "S256",
            "timeout": PROVIDER_TIMEOUT_SECONDS,
        }
        if provider.protocol == "github":
            client_kwargs["token_endpoint_auth_method"] = "client_secret_post"
            self.oauth.register(
                provider.name,
                client_id=provider.client_id,
                client_secret=provider.client_secret,
                authorize_url=provider.authorize_url,
                access_token_url=provider.token_url,
                api_base_url=provider.api_base_url,
                client_kwargs=client_kwargs,
            )
            return
        self.oauth.register(
            provider.name,
            client_id=provider.client_id,
            client_secret=provider.client_secret,
            server_metadata_url=provider.server_metadata_url,
            client_kwargs=client_kwargs,
        )

    def routes(self) -> list[BaseRoute]:
        return [
            Mount(
                PREFIX,
                routes=[
                    Route("/{provider}/login", self.login, methods=["GET"]),
                    Route("/{provider}/callback", self.callback, methods=["GET"]),
                ],
                middleware=[Middleware(OidcStateCookie, secret=self.state_secret)],
            )
        ]

    def _redirect_uri(self, request: Request, name: str) -> str:
        base = self.public_url or f"{request.url.scheme}://{request.url.netloc}"
        return f"{base}{PREFIX}/{name}/callback"

    async def login(self, request: Request) -> Response:
        name = request.path_params["provider"]
        if name not in self.providers:
            return failure(UNKNOWN_PROVIDER)
        client = self.oauth.create_client(name)
        try:
            response: Response = await client.authorize_redirect(
                request, self._redirect_uri(request, name)
            )
        except DISCOVERY_ERRORS as exc:
            log.warning("oidc_provider_unavailable", provider=name, error=type(exc).__name__)
            return failure(PROVIDER_UNAVAILABLE)
        except Exception:  # never a 500 on a browser redirect: log it, show a code
            log.exception("oidc_login_start_failed", provider=name)
            return failure(LOGIN_FAILED)
        return response

    async def callback(self, request: Request) -> Response:
        name = request.path_params["provider"]
        provider = self.providers.get(name)
        if provider is None:
            return failure(UNKNOWN_PROVIDER)
        limiter = self.services.limiter
        if isinstance(limiter, RateLimiter):
            verdict = await limiter.admit_sign_in(request)
            if not verdict.allowed:
                refused = failure(RATE_LIMITED)
                refused.headers.update(verdict.headers())
                return refused
        try:
            identity = await self._identity(request, provider)
            user_id, issued = await self._sign_in(identity)
        except LoginRefused as refused:
            log.info("oidc_login_refused", provider=name, code=refused.code, reason=str(refused))
            await self._audit(request, name, None, refused.code)
            return failure(refused.code)
        except Exception:  # never a 500 on a browser redirect: log it, show a code
            log.exception("oidc_login_failed", provider=name)
            return failure(LOGIN_FAILED)
        await self._audit(request, name, user_id, None)
        response = RedirectResponse("/", status_code=303)
        set_session_cookies(request, response, self.services, issued)
        log.info("oidc_login", provider=name, session_id=str(issued.session_id))
        return response

    async def _audit(
        self, request: Request, provider: str, user_id: uuid.UUID | None, error: str | None
    ) -> None:
        """A sign-in through a provider is an auth event on the system chain, like login."""
        await record_system_event(
            self.services.engine,
            self.services.keyring,
            action="auth.login_oidc" if error is None else "auth.login_oidc_failed",
            outcome=Outcome.OK if error is None else Outcome.FAILED,
            actor_id=user_id,
            actor_kind=ActorKind.USER if user_id else ActorKind.ANONYMOUS,
            target_ids=[provider] if error is None else [provider, error],
            request_id=structlog.contextvars.get_contextvars().get("request_id"),
            ip=request.client.host if request.client else None,
        )

    async def _identity(
        self, request: Request, provider: oidc.OidcProvider
    ) -> oidc.ExternalIdentity:
        """The identity the provider vouches for; every protocol check happens here."""
        if request.query_params.get("error"):
            raise LoginRefused(PROVIDER_DENIED, request.query_params["error"])
        client = self.oauth.create_client(provider.name)
        try:
            if provider.protocol == "github":
                token = await client.authorize_access_token(request)
                return await _github_identity(client, provider.name, token)
            metadata = await client.load_server_metadata()
            if not metadata.get("issuer"):
                raise LoginRefused(INVALID_ID_TOKEN, "the discovery document names no issuer")
            # authlib checks iss only when asked and aud not at all: pin both (OIDC Core 3.1.3.7).
            claims_options = {
                "iss": {"essential": True, "value": metadata["issuer"]},
                "aud": {"essential": True, "value": provider.client_id},
            }
            token = await client.authorize_access_token(request, claims_options=claims_options)
        except MismatchingStateError as exc:
            raise LoginRefused(STATE_MISMATCH, "state unknown to this browser") from exc
        except OAuthError as exc:
            raise LoginRefused(TOKEN_EXCHANGE_FAILED, str(exc.error)) from exc
        except JoseError as exc:
            raise LoginRefused(INVALID_ID_TOKEN, f"{type(exc).__name__}: {exc}") from exc
        except NETWORK_ERRORS as exc:
            raise LoginRefused(PROVIDER_UNAVAILABLE, type(exc).__name__) from exc
        userinfo = token.get("userinfo")
        if not userinfo:
            raise LoginRefused(INVALID_ID_TOKEN, "the token response carries no ID token")
        return oidc.ExternalIdentity(
            provider=provider.name,
            subject=str(userinfo["sub"]),
            email=userinfo.get("email"),
            email_verified=userinfo.get("email_verified") in (True, "true"),
            name=userinfo.get("name"),
        )

    async def _sign_in(
        self, identity: oidc.ExternalIdentity
    ) -> tuple[uuid.UUID, service.IssuedSession]:
        """Link or create the user and start a session, in one short transaction."""
        services = self.services
        try:
            async with unit_of_work(services.engine) as session:
                user = await oidc.sign_in(session, services.keyring, identity)
                issued = await service.start_session(
                    session, services.signer, user.id, services.settings.refresh_token_days
                )
                return user.id, issued
        except oidc.EmailNotVerified as exc:
            raise LoginRefused(EMAIL_NOT_VERIFIED, exc.message) from exc
        except DomainError as exc:
            raise LoginRefused(LOGIN_FAILED, exc.message) from exc
        except IntegrityError as exc:  # two first sign-ins of one person at once
            services.keyring.forget()
            raise LoginRefused(LOGIN_FAILED, "concurrent first sign-in") from exc


async def _github_identity(client: Any, name: str, token: dict[str, Any]) -> oidc.ExternalIdentity:
    """GitHub speaks OAuth2, not OIDC: the user from /user, the email from /user/emails
    (only the primary one, and only if GitHub verified it)."""
    headers = {"Accept": "application/vnd.github+json"}
    user_response = await client.get("user", token=token, headers=headers)
    user_response.raise_for_status()
    user = user_response.json()
    emails_response = await client.get("user/emails", token=token, headers=headers)
    emails_response.raise_for_status()
    primary = next((e for e in emails_response.json() if e.get("primary")), None)
    return oidc.ExternalIdentity(
        provider=name,
        subject=str(user["id"]),
        email=primary["email"] if primary else None,
        email_verified=bool(primary and primary.get("verified") is True),
        name=user.get("name") or user.get("login"),
    )
