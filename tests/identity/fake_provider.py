"""A fake OpenID Connect provider and a fake GitHub, served by uvicorn on 127.0.0.1.

They speak the real wire formats: a discovery document, a JWKS, an authorize endpoint that
redirects back with a code, a token endpoint that authenticates the client, checks the
redirect URI and verifies the PKCE code_verifier against the code_challenge (RFC 7636, S256)
and returns an RS256 ID token carrying the nonce it was given; GitHub's
`/login/oauth/access_token` (JSON when asked for it, else form-encoded), `/user` and
`/user/emails`. Tests change `person`, `tamper` or `signing_key` to make the provider
misbehave, and read `token_errors` to see why its token endpoint refused a request.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "wealthwise-test-client"
CLIENT_SECRET = "fake-client-secret-0123456789"
KEY_ID = "fake-signing-key-1"


@dataclass
class Person:
    """Who signs in at the provider next."""

    subject: str
    email: str | None
    email_verified: bool = True
    name: str = "Asha Verma"


@dataclass
class Grant:
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    person: Person
    github: bool = False


@dataclass
class FakeProvider:
    base_url: str = ""
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, {"kid": KEY_ID}))
    person: Person = field(default_factory=lambda: Person("sub-0", "nobody@example.com"))
    # Claims to override in the next ID tokens, e.g. {"nonce": "other"} or {"aud": "x"}.
    tamper: dict[str, Any] = field(default_factory=dict)
    # Sign ID tokens with this key instead of the published one.
    signing_key: RSAKey | None = None
    deny: bool = False
    omit_id_token: bool = False
    grants: dict[str, Grant] = field(default_factory=dict)
    token_errors: list[str] = field(default_factory=list)
    tokens: dict[str, Person] = field(default_factory=dict)
    github_emails: list[dict[str, Any]] | None = None

    def reset(self) -> None:
        self.tamper, self.signing_key, self.deny, self.omit_id_token = {}, None, False, False
        self.grants.clear()
        self.token_errors.clear()
        self.github_emails = None

    @property
    def issuer(self) -> str:
        return self.base_url

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/github/login/oauth/authorize", self.github_authorize),
                Route("/github/login/oauth/access_token", self.github_token, methods=["POST"]),
                Route("/github/api/user", self.github_user),
                Route("/github/api/user/emails", self.github_user_emails),
            ]
        )

    # ------------------------------------------------------------------ OpenID Connect

    async def discovery(self, _request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.base_url}/authorize",
                "token_endpoint": f"{self.base_url}/token",
                "jwks_uri": f"{self.base_url}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            }
        )

    async def jwks(self, _request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    def _authorize(self, request: Request, *, github: bool) -> Response:
        query = request.query_params
        problems = [
            name
            for name, ok in (
                ("client_id", query.get("client_id") == CLIENT_ID),
                ("response_type", query.get("response_type") == "code"),
                ("code_challenge_method", query.get("code_challenge_method") == "S256"),
                ("code_challenge", bool(query.get("code_challenge"))),
                ("state", bool(query.get("state"))),
                ("nonce", github or bool(query.get("nonce"))),
                ("redirect_uri", bool(query.get("redirect_uri"))),
            )
            if not ok
        ]
        if problems:
            return PlainTextResponse(f"bad authorization request: {problems}", status_code=400)
        back = query["redirect_uri"]
        if self.deny:
            params = {"error": "access_denied", "state": query["state"]}
            return RedirectResponse(f"{back}?{urlencode(params)}", status_code=302)
        code = secrets.token_urlsafe(24)
        self.grants[code] = Grant(
            back, query["code_challenge"], query.get("nonce"), self.person, github
        )
        return RedirectResponse(
            f"{back}?{urlencode({'code': code, 'state': query['state']})}", status_code=302
        )

    async def authorize(self, request: Request) -> Response:
        return self._authorize(request, github=False)

    def _redeem(self, form: dict[str, str], client_ok: bool, *, github: bool) -> Grant | str:
        """The grant behind a code, or why the token request is refused (RFC 6749 5.2)."""
        if not client_ok:
            return "invalid_client"
        if form.get("grant_type") != "authorization_code":
            return "unsupported_grant_type"
        grant = self.grants.pop(form.get("code", ""), None)  # a code works once
        if grant is None or grant.github != github:
            return "invalid_grant: unknown code"
        if form.get("redirect_uri") != grant.redirect_uri:
            return "invalid_grant: redirect_uri"
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if not verifier or not secrets.compare_digest(challenge, grant.code_challenge):
            return "invalid_grant: PKCE verification failed"
        return grant

    def _refuse(self, reason: str) -> Response:
        self.token_errors.append(reason)
        error, _, description = reason.partition(": ")
        return JSONResponse({"error": error, "error_description": description}, status_code=400)

    async def token(self, request: Request) -> Response:
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        client_ok = request.headers.get("authorization") == f"Basic {expected}"
        form = await _form(request)
        grant = self._redeem(form, client_ok, github=False)
        if isinstance(grant, str):
            return self._refuse(grant)
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": grant.person.subject,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
            "email": grant.person.email,
            "email_verified": grant.person.email_verified,
            "name": grant.person.name,
        }
        claims.update(self.tamper)
        key = self.signing_key or self.key
        body = {
            "access_token": secrets.token_urlsafe(24),
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": "openid email profile",
            "id_token": jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key),
        }
        if self.omit_id_token:
            del body["id_token"]
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    # ------------------------------------------------------------------ GitHub (OAuth2)

    async def github_authorize(self, request: Request) -> Response:
        return self._authorize(request, github=True)

    async def github_token(self, request: Request) -> Response:
        form = await _form(request)
        client_ok = form.get("client_id") == CLIENT_ID and form.get("client_secret") == (
            CLIENT_SECRET
        )
        grant = self._redeem(form, client_ok, github=True)
        if isinstance(grant, str):
            return self._refuse(grant)
        access = secrets.token_urlsafe(24)
        self.tokens[access] = grant.person
        body = {"access_token": access, "token_type": "bearer", "scope": "read:user,user:email"}
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(body)
        return PlainTextResponse(urlencode(body), media_type="application/x-www-form-urlencoded")

    def _github_person(self, request: Request) -> Person | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return self.tokens.get(token) if scheme.lower() in ("bearer", "token") else None

    async def github_user(self, request: Request) -> Response:
        person = self._github_person(request)
        if person is None:
            return JSONResponse({"message": "Requires authentication"}, status_code=401)
        login = person.name.split()[0].lower()
        return JSONResponse(
            {"id": int(person.subject), "login": login, "name": person.name, "email": None}
        )

    async def github_user_emails(self, request: Request) -> Response:
        person = self._github_person(request)
        if person is None:
            return JSONResponse({"message": "Requires authentication"}, status_code=401)
        if self.github_emails is not None:
            return JSONResponse(self.github_emails)
        return JSONResponse(
            [
                {
                    "email": f"old-{person.email}",
                    "primary": False,
                    "verified": True,
                    "visibility": None,
                },
                {
                    "email": person.email,
                    "primary": True,
                    "verified": person.email_verified,
                    "visibility": "private",
                },
            ]
        )


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (Starlette's parser needs python-multipart)."""
    assert request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
    return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))


class ServerThread:
    """uvicorn serving an app on a free port of 127.0.0.1, in a thread of its own."""

    def __init__(self, app: Starlette) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the fake provider did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
