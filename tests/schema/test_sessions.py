"""Session hardening over the API: new session ids, refresh families, expiry, rotated keys,
logout. (Tampered tokens in every form are covered by tests/domain/identity/test_tokens.py.)"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from api.app import build_services, create_app
from domain.core.settings import RetiredJwtSecret
from domain.identity.tokens import TokenSigner
from schema.context import AppServices
from tests.graphql import PASSWORD, Client, register
from tests.schema.test_identity import LOGIN, REFRESH

ME = "{ me { user { name } } }"
NEW_SECRET = SecretStr("a-brand-new-secret-0123456789abcdef")
ACCESS, REFRESH_COOKIE = "__Host-ww_access", "__Host-ww_refresh"


def _part(token: str, index: int) -> dict[str, Any]:
    """The JWT's header (0) or claims (1), read without verifying."""
    text = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    return decoded


def _claims(token: str) -> dict[str, Any]:
    return _part(token, 1)


def _cookies(client: Client) -> tuple[str, str]:
    access, refresh = client.http.cookies.get(ACCESS), client.http.cookies.get(REFRESH_COOKIE)
    assert access and refresh
    return access, refresh


def _with_bearer(make_client: Any, token: str) -> Client:
    client: Client = make_client()
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def _with_refresh(make_client: Any, refresh: str) -> Client:
    client: Client = make_client()
    client.http.cookies.set(REFRESH_COOKIE, refresh, domain="wealthwise.test")
    return client


async def test_every_login_starts_a_new_session_id(make_client: Any) -> None:
    first = make_client()
    session = await register(first)
    seen = {_claims(_cookies(first)[0])["sid"]}
    for _ in range(2):
        again = make_client()
        await again.ok(LOGIN, e=session["email"], p=PASSWORD)
        seen.add(_claims(_cookies(again)[0])["sid"])
    assert len(seen) == 3
    # Logging in on a client that already holds a session replaces it with a new one too.
    await first.ok(LOGIN, e=session["email"], p=PASSWORD)
    assert _claims(_cookies(first)[0])["sid"] not in seen


async def test_a_reused_refresh_token_revokes_the_family_and_its_access_tokens(
    make_client: Any,
) -> None:
    victim = make_client()
    session = await register(victim)
    access_1, refresh_1 = _cookies(victim)
    await victim.ok(REFRESH)
    access_2, refresh_2 = _cookies(victim)
    assert refresh_2 != refresh_1 and _claims(access_2)["sid"] == _claims(access_1)["sid"]
    elsewhere = make_client()  # another login of the same person: another family
    await elsewhere.ok(LOGIN, e=session["email"], p=PASSWORD)
    await _with_bearer(make_client, access_2).ok(ME)

    assert await _with_refresh(make_client, refresh_1).code(REFRESH) == "UNAUTHENTICATED"

    for access in (access_1, access_2):
        assert await _with_bearer(make_client, access).code(ME) == "UNAUTHENTICATED"
    assert await _with_refresh(make_client, refresh_2).code(REFRESH) == "UNAUTHENTICATED"
    assert (await elsewhere.ok(ME))["me"]["user"]["name"] == "Asha"
    await elsewhere.ok(REFRESH)


async def test_an_expired_access_token_is_refused(make_client: Any, services: AppServices) -> None:
    client = make_client()
    await register(client)
    claims = _claims(_cookies(client)[0])
    user, sid = uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"])
    ttl = services.signer.ttl_seconds
    secret = services.settings.jwt_secret
    assert secret is not None
    issued_long_ago = TokenSigner(
        secret.get_secret_value().encode(), ttl, clock=lambda: time.time() - ttl - 1
    ).issue(user, sid)
    assert await _with_bearer(make_client, issued_long_ago).code(ME) == "UNAUTHENTICATED"
    recent = TokenSigner(
        secret.get_secret_value().encode(), ttl, clock=lambda: time.time() - ttl + 30
    ).issue(user, sid)
    await _with_bearer(make_client, recent).ok(ME)  # the same session, still in its lifetime


async def _client_of(services: AppServices, **changes: Any) -> tuple[Client, AppServices]:
    """A client of an API process started with other settings over the same database."""
    built = build_services(services.settings.model_copy(update=changes))
    app = create_app(built.settings, built)
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://wealthwise.test"
    )
    return Client(http), built


async def test_a_rotated_out_key_is_accepted_during_its_lifetime_and_refused_after(
    make_client: Any, services: AppServices
) -> None:
    client = make_client()
    await register(client)
    old_access, refresh = _cookies(client)
    old_secret = services.settings.jwt_secret
    ttl = services.signer.ttl_seconds

    def retired(at: datetime) -> list[RetiredJwtSecret]:
        assert old_secret is not None
        return [RetiredJwtSecret(secret=old_secret, retired_at=at)]

    rotated, built = await _client_of(
        services, jwt_secret=NEW_SECRET, jwt_previous_secrets=retired(datetime.now(UTC))
    )
    long_retired, built_long = await _client_of(
        services,
        jwt_secret=NEW_SECRET,
        jwt_previous_secrets=retired(datetime.now(UTC) - timedelta(seconds=ttl + 1)),
    )
    try:
        rotated.headers["Authorization"] = f"Bearer {old_access}"
        assert (await rotated.ok(ME))["me"]["user"]["name"] == "Asha"
        long_retired.headers["Authorization"] = f"Bearer {old_access}"
        assert await long_retired.code(ME) == "UNAUTHENTICATED"
        # Refresh tokens are opaque: the rotated process issues a JWT under its new key.
        rotated.headers.clear()
        rotated.http.cookies.set(REFRESH_COOKIE, refresh, domain="wealthwise.test")
        await rotated.ok(REFRESH)
        new_access = rotated.http.cookies.get(ACCESS)
        assert new_access and _part(new_access, 0)["kid"] == built.signer.kid
        assert built.signer.kid != services.signer.kid
        assert await _with_bearer(make_client, new_access).code(ME) == "UNAUTHENTICATED"
    finally:
        for opened, svc in ((rotated, built), (long_retired, built_long)):
            await opened.http.aclose()
            await svc.engine.dispose()


async def test_logout_refuses_the_old_access_and_refresh_tokens(make_client: Any) -> None:
    client = make_client()
    await register(client)
    access, refresh = _cookies(client)
    await client.ok("mutation { logout { sessionsEnded } }")
    assert await _with_bearer(make_client, access).code(ME) == "UNAUTHENTICATED"
    assert await _with_refresh(make_client, refresh).code(REFRESH) == "UNAUTHENTICATED"


async def test_logout_everywhere_refuses_every_sessions_tokens(make_client: Any) -> None:
    laptop = make_client()
    session = await register(laptop)
    phone = make_client()
    await phone.ok(LOGIN, e=session["email"], p=PASSWORD)
    held = [_cookies(laptop), _cookies(phone)]
    bystander = make_client()
    await register(bystander, name="Rohan")
    await phone.ok("mutation { logoutEverywhere { sessionsEnded } }")
    for access, refresh in held:
        assert await _with_bearer(make_client, access).code(ME) == "UNAUTHENTICATED"
        assert await _with_refresh(make_client, refresh).code(REFRESH) == "UNAUTHENTICATED"
    assert (await bystander.ok(ME))["me"]["user"]["name"] == "Rohan"
