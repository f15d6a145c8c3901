"""Sign-in through OpenID Connect and GitHub, end to end against a local fake provider.

The API runs as the real app (httpx's ASGI transport); the provider is a real HTTP server
(tests/identity/fake_provider.py). A test plays the browser: it opens the login URL,
follows the redirect to the provider, and brings the provider's redirect back to the API.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc.jwk import RSAKey
from sqlalchemy import func, select
from sqlmodel import col

from api.app import build_services, create_app
from domain.core.crypto import SYSTEM_OWNER
from domain.core.db import bind_scope, unit_of_work
from domain.core.settings import OidcProviderSettings, Settings
from domain.identity.models import OidcIdentity
from domain.identity.oidc import GOOGLE_DISCOVERY, configured_providers
from domain.identity.service import configure_password_hashing
from schema.context import AppServices
from schema.ids import decode_id
from tests.audit.helpers import chain
from tests.graphql import PASSWORD, REGISTER, Client, register
from tests.identity import fake_provider
from tests.identity.fake_provider import CLIENT_ID, CLIENT_SECRET, KEY_ID, FakeProvider, Person

API = "https://wealthwise.test"
ME = "{ me { user { id email name } workspaces { id name role baseCurrency } } }"
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { user { id } } }"


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider()
    server = fake_provider.ServerThread(fake.app())
    fake.base_url = server.start()
    yield fake
    server.stop()


@dataclass
class Api:
    http: httpx.AsyncClient
    transport: httpx.ASGITransport
    services: AppServices
    provider: FakeProvider

    def client(self) -> Client:
        return Client(self.http)

    def other_browser(self) -> httpx.AsyncClient:
        """A second browser (its own cookie jar) on the same app."""
        return httpx.AsyncClient(transport=self.transport, base_url=API)

    async def linked_identities(self, subject: str) -> int:
        """How many users the provider's subject is linked to (scoped as a sign-in is)."""
        provider = "github" if subject.isdigit() else "fake"
        async with unit_of_work(self.services.engine, write=False) as session:
            await bind_scope(session, lookup=f"{provider}:{subject}")
            statement = select(func.count()).where(col(OidcIdentity.subject) == subject)
            return int((await session.execute(statement)).scalar_one())


def provider_settings(base_url: str) -> dict[str, OidcProviderSettings]:
    secret: Any = CLIENT_SECRET  # pydantic turns it into a SecretStr
    return {
        "fake": OidcProviderSettings(
            client_id=CLIENT_ID,
            client_secret=secret,
            server_metadata_url=f"{base_url}/.well-known/openid-configuration",
            display_name="Fake ID",
        ),
        "github": OidcProviderSettings(
            client_id=CLIENT_ID,
            client_secret=secret,
            authorize_url=f"{base_url}/github/login/oauth/authorize",
            token_url=f"{base_url}/github/login/oauth/access_token",
            api_base_url=f"{base_url}/github/api/",
        ),
    }


@pytest.fixture
async def api(database: Settings, provider: FakeProvider) -> AsyncIterator[Api]:
    provider.reset()
    settings = database.model_copy(update={"oidc_providers": provider_settings(provider.base_url)})
    services = build_services(settings)
    transport = httpx.ASGITransport(app=create_app(settings, services))
    async with httpx.AsyncClient(transport=transport, base_url=API) as http:
        yield Api(http, transport, services, provider)
    await services.engine.dispose()


def new_person(**changes: Any) -> Person:
    unique = uuid.uuid4().hex[:10]
    person = Person(subject=f"sub-{unique}", email=f"asha-{unique}@example.com")
    for name, value in changes.items():
        setattr(person, name, value)
    return person


async def to_provider(api: Api, name: str = "fake") -> str:
    """Open the login URL and let the provider answer: the URL it redirects back to."""
    started = await api.http.get(f"/auth/oidc/{name}/login")
    assert started.status_code == 302, started.text
    async with httpx.AsyncClient() as browser:
        at_provider = await browser.get(started.headers["location"])
    assert at_provider.status_code == 302, at_provider.text
    back: str = at_provider.headers["location"]
    assert back.startswith(f"{API}/auth/oidc/{name}/callback?")
    return back


async def sign_in(api: Api, person: Person, name: str = "fake") -> httpx.Response:
    api.provider.person = person
    return await api.http.get(await to_provider(api, name))


def login_error(response: httpx.Response) -> str | None:
    """The code of a failed sign-in (None when it succeeded); asserts no session started."""
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    assert location.path == "/"
    error = parse_qs(location.query).get("login_error", [None])[0]
    session_cookies = [c for c in response.headers.get_list("set-cookie") if "ww_access" in c]
    assert bool(session_cookies) == (error is None), response.headers
    return error


async def test_the_login_redirect_asks_for_a_code_with_pkce_state_and_nonce(api: Api) -> None:
    response = await api.http.get("/auth/oidc/fake/login")
    assert response.status_code == 302
    url = urlsplit(response.headers["location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{api.provider.base_url}/authorize"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["response_type"] == "code" and query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == f"{API}/auth/oidc/fake/callback"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 20 and len(query["nonce"]) >= 20
    assert set(query["scope"].split()) == {"openid", "email", "profile"}
    (state_cookie,) = response.headers.get_list("set-cookie")
    lowered = state_cookie.lower()
    assert lowered.startswith("__secure-ww_oidc=")  # served over TLS
    assert "path=/auth/oidc" in lowered and "max-age=600" in lowered
    assert "httponly" in lowered and "secure" in lowered and "samesite=lax" in lowered


async def test_a_first_sign_in_creates_a_user_and_workspace_and_the_session_works(
    api: Api,
) -> None:
    person = new_person(name="Asha Verma")
    response = await sign_in(api, person)
    assert login_error(response) is None
    for header in (h for h in response.headers.get_list("set-cookie") if "ww_" in h):
        if "ww_oidc" in header:
            continue  # the spent sign-in state, cleared
        lowered = header.lower()
        assert header.startswith("__Host-ww_")
        assert "httponly" in lowered and "secure" in lowered and "samesite=strict" in lowered
    me = (await api.client().ok(ME))["me"]
    assert me["user"]["email"] == person.email and me["user"]["name"] == "Asha Verma"
    assert [(w["name"], w["role"]) for w in me["workspaces"]] == [
        ("Asha Verma's household", "OWNER")
    ]
    assert await api.linked_identities(person.subject) == 1
    # The new user has a working household: the default categories are there.
    assert (await api.client().ok("{ categories { id } }"))["categories"]


async def test_a_second_sign_in_by_the_same_subject_reaches_the_same_user(api: Api) -> None:
    person = new_person()
    assert login_error(await sign_in(api, person)) is None
    first = (await api.client().ok(ME))["me"]
    api.http.cookies.clear()
    # The subject decides, not the email: a changed (even unverified) email is the same user.
    again = new_person(subject=person.subject, email_verified=False)
    assert login_error(await sign_in(api, again)) is None
    second = (await api.client().ok(ME))["me"]
    assert second["user"]["id"] == first["user"]["id"]
    assert second["workspaces"] == first["workspaces"]
    assert await api.linked_identities(person.subject) == 1


async def test_a_verified_email_links_to_the_existing_password_user(api: Api) -> None:
    registered = await register(api.client(), name="Rohan")
    api.http.cookies.clear()
    person = new_person(email=registered["email"].upper())
    assert login_error(await sign_in(api, person)) is None
    me = (await api.client().ok(ME))["me"]
    assert me["user"]["id"] == registered["user"]["id"]
    assert [w["id"] for w in me["workspaces"]] == [w["id"] for w in registered["workspaces"]]
    assert await api.linked_identities(person.subject) == 1
    # The password keeps working beside the provider.
    fresh = Client(api.other_browser())
    async with fresh.http:
        assert (await fresh.ok(LOGIN, e=registered["email"], p=PASSWORD))["login"]["user"]


@pytest.mark.parametrize("existing", [False, True], ids=["new-email", "existing-user"])
async def test_an_unverified_email_is_refused_and_nothing_is_created(
    api: Api, existing: bool
) -> None:
    email = f"mallory-{uuid.uuid4().hex[:10]}@example.com"
    if existing:  # someone else's account: an unverified claim must not take it over
        email = (await register(api.client(), name="Victim"))["email"]
        api.http.cookies.clear()
    person = new_person(email=email, email_verified=False)
    assert login_error(await sign_in(api, person)) == "EMAIL_NOT_VERIFIED"
    assert await api.linked_identities(person.subject) == 0
    assert (await api.client().code(ME)) == "UNAUTHENTICATED"
    if not existing:  # no user was created: the email is still free
        data = await api.client().ok(
            REGISTER, email=email, password=PASSWORD, name="Later", currency="INR"
        )
        assert data["register"]["user"]["email"] == email


async def test_a_wrong_state_is_refused(api: Api) -> None:
    person = new_person()
    api.provider.person = person
    back = urlsplit(await to_provider(api))
    query = {k: v[0] for k, v in parse_qs(back.query).items()}
    forged = f"{API}{back.path}?code={query['code']}&state=forged-{query['state']}"
    assert login_error(await api.http.get(forged)) == "STATE_MISMATCH"
    assert await api.linked_identities(person.subject) == 0


async def test_a_callback_in_a_browser_that_did_not_start_the_sign_in_is_refused(
    api: Api,
) -> None:
    """Login CSRF: an attacker's own code and state, planted in the victim's browser."""
    person = new_person()
    api.provider.person = person
    back = await to_provider(api)
    async with api.other_browser() as victim:
        assert login_error(await victim.get(back)) == "STATE_MISMATCH"
    assert await api.linked_identities(person.subject) == 0


async def test_a_replayed_callback_is_refused(api: Api) -> None:
    api.provider.person = new_person()
    back = await to_provider(api)
    assert login_error(await api.http.get(back)) is None
    assert login_error(await api.http.get(back)) == "STATE_MISMATCH"


async def test_a_code_injected_with_another_verifier_fails_pkce_at_the_provider(
    api: Api,
) -> None:
    """The victim's state with a code that was issued against another code_challenge."""
    person = new_person()
    api.provider.person = person
    async with api.other_browser() as attacker:
        started = await attacker.get("/auth/oidc/fake/login")
        async with httpx.AsyncClient() as browser:
            stolen = await browser.get(started.headers["location"])
    stolen_code = parse_qs(urlsplit(stolen.headers["location"]).query)["code"][0]
    mine = urlsplit(await to_provider(api))
    state = parse_qs(mine.query)["state"][0]
    injected = f"{API}{mine.path}?code={stolen_code}&state={state}"
    assert login_error(await api.http.get(injected)) == "TOKEN_EXCHANGE_FAILED"
    assert api.provider.token_errors == ["invalid_grant: PKCE verification failed"]
    assert await api.linked_identities(person.subject) == 0


ROGUE_KEY = RSAKey.generate_key(2048, {"kid": KEY_ID})
UNKNOWN_KEY = RSAKey.generate_key(2048, {"kid": "not-in-the-jwks"})


@pytest.mark.parametrize(
    ("tamper", "key"),
    [
        ({"nonce": "a-nonce-of-another-sign-in"}, None),
        ({}, ROGUE_KEY),
        ({}, UNKNOWN_KEY),
        ({"aud": "another-client"}, None),
        ({"aud": ["another-client"], "azp": CLIENT_ID}, None),
        ({"iss": "https://issuer.example"}, None),
        ({"exp": int(time.time()) - 3600}, None),
    ],
    ids=[
        "wrong-nonce",
        "key-not-in-jwks",
        "unknown-kid",
        "other-audience",
        "other-audience-with-our-azp",
        "other-issuer",
        "expired",
    ],
)
async def test_a_bad_id_token_is_refused(
    api: Api, tamper: dict[str, Any], key: RSAKey | None
) -> None:
    api.provider.tamper, api.provider.signing_key = tamper, key
    person = new_person()
    assert login_error(await sign_in(api, person)) == "INVALID_ID_TOKEN"
    assert await api.linked_identities(person.subject) == 0
    assert api.provider.token_errors == []  # the provider was happy: we refused


async def test_a_token_response_without_an_id_token_is_refused(api: Api) -> None:
    api.provider.omit_id_token = True
    person = new_person()
    assert login_error(await sign_in(api, person)) == "INVALID_ID_TOKEN"
    assert await api.linked_identities(person.subject) == 0


async def test_a_denied_consent_comes_back_as_a_clear_error(api: Api) -> None:
    api.provider.deny = True
    started = await api.http.get("/auth/oidc/fake/login")
    async with httpx.AsyncClient() as browser:
        back = await browser.get(started.headers["location"])
    assert login_error(await api.http.get(back.headers["location"])) == "PROVIDER_DENIED"


async def test_an_unknown_provider_is_a_clear_error(api: Api) -> None:
    for path in ("/auth/oidc/nope/login", "/auth/oidc/nope/callback?code=x&state=y"):
        assert login_error(await api.http.get(path)) == "UNKNOWN_PROVIDER"


async def test_an_unreachable_provider_is_a_clear_error(database: Settings) -> None:
    providers = provider_settings("http://127.0.0.1:1")
    settings = database.model_copy(update={"oidc_providers": providers})
    services = build_services(settings)
    transport = httpx.ASGITransport(app=create_app(settings, services))
    async with httpx.AsyncClient(transport=transport, base_url=API) as http:
        response = await http.get("/auth/oidc/fake/login")
    await services.engine.dispose()
    assert login_error(response) == "PROVIDER_UNAVAILABLE"


@pytest.fixture
def production_hashing(database: Settings) -> Iterator[None]:
    """argon2id with the production parameters (the suite's are cheap), so that one run
    outweighs the rest of a request, as a timing comparison needs."""
    defaults = Settings.model_fields
    configure_password_hashing(
        database.model_copy(
            update={
                name: defaults[name].default
                for name in (
                    "password_hash_memory_kib",
                    "password_hash_time_cost",
                    "password_hash_parallelism",
                )
            }
        )
    )
    try:
        yield
    finally:
        configure_password_hashing(database)


async def test_a_provider_only_user_cannot_log_in_with_a_password(
    api: Api, production_hashing: None
) -> None:
    person = new_person()
    assert login_error(await sign_in(api, person)) is None
    registered = await register(api.client(), name="Timing")
    api.http.cookies.clear()
    client = api.client()
    refused = await client.error(LOGIN, e=person.email, p=PASSWORD)
    unknown = await client.error(LOGIN, e=f"x-{person.email}", p=PASSWORD)
    assert refused["extensions"]["code"] == "UNAUTHENTICATED"
    assert refused["message"] == unknown["message"]

    async def fastest(email: str) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            await client.execute(LOGIN, e=email, p="not-the-password-1")
            times.append(time.perf_counter() - started)
        return min(times)

    # A user without a password costs an argon2 run like a wrong password does.
    with_password = await fastest(registered["email"])
    assert await fastest(person.email or "") > 0.5 * with_password


async def test_login_providers_lists_the_buttons(api: Api) -> None:
    data = await api.client().ok("{ loginProviders { name displayName loginUrl } }")
    assert data["loginProviders"] == [
        {"name": "fake", "displayName": "Fake ID", "loginUrl": "/auth/oidc/fake/login"},
        {"name": "github", "displayName": "GitHub", "loginUrl": "/auth/oidc/github/login"},
    ]


async def test_the_github_preset_signs_in_with_the_verified_primary_email(api: Api) -> None:
    person = new_person(subject=str(uuid.uuid4().int % 10**9), name="Octo Cat")
    assert login_error(await sign_in(api, person, "github")) is None
    me = (await api.client().ok(ME))["me"]
    assert me["user"]["email"] == person.email and me["user"]["name"] == "Octo Cat"
    assert await api.linked_identities(person.subject) == 1


async def test_github_without_a_verified_primary_email_is_refused(api: Api) -> None:
    person = new_person(subject=str(uuid.uuid4().int % 10**9))
    api.provider.github_emails = [
        {"email": person.email, "primary": True, "verified": False, "visibility": None},
        {"email": f"other-{person.email}", "primary": False, "verified": True},
    ]
    assert login_error(await sign_in(api, person, "github")) == "EMAIL_NOT_VERIFIED"
    assert await api.linked_identities(person.subject) == 0


def test_presets_need_only_a_client_id_and_secret() -> None:
    secret: Any = "s"
    settings = Settings(
        oidc_providers={
            "google": OidcProviderSettings(client_id="g", client_secret=secret),
            "github": OidcProviderSettings(client_id="h", client_secret=secret),
        }
    )
    google, github = configured_providers(settings)
    assert (google.protocol, google.server_metadata_url) == ("oidc", GOOGLE_DISCOVERY)
    assert google.scopes == "openid email profile" and google.display_name == "Google"
    assert github.protocol == "github" and github.token_url is not None
    assert github.token_url.startswith("https://github.com/")


def test_providers_parse_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "WEALTHWISE_OIDC_PROVIDERS",
        '{"corp": {"client_id": "c", "client_secret": "s",'
        ' "server_metadata_url": "https://id.corp.example/.well-known/openid-configuration",'
        ' "display_name": "Corp SSO"}}',
    )
    (corp,) = configured_providers(Settings())
    assert (corp.name, corp.display_name, corp.client_secret) == ("corp", "Corp SSO", "s")


@pytest.mark.parametrize(
    ("name", "config", "message"),
    [
        ("corp", {}, "server_metadata_url"),
        ("Bad Name", {"server_metadata_url": "https://x/"}, "provider name"),
        ("corp", {"server_metadata_url": "https://x/", "scopes": "email"}, "openid"),
    ],
)
def test_a_misconfigured_provider_fails_at_start(
    name: str, config: dict[str, Any], message: str
) -> None:
    secret: Any = "s"
    provider = OidcProviderSettings(client_id="c", client_secret=secret, **config)
    with pytest.raises(ValueError, match=message):
        configured_providers(Settings(oidc_providers={name: provider}))


async def test_over_plain_http_the_state_cookie_is_not_secure_and_public_url_wins(
    database: Settings, provider: FakeProvider
) -> None:
    providers = provider_settings(provider.base_url)
    public = "https://money.example.com/"
    for public_url, redirect_base in ((None, "http://127.0.0.1:8000"), (public, public[:-1])):
        settings = database.model_copy(
            update={"oidc_providers": providers, "public_url": public_url}
        )
        services = build_services(settings)
        transport = httpx.ASGITransport(app=create_app(settings, services))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
            response = await http.get("/auth/oidc/fake/login")
        await services.engine.dispose()
        query = parse_qs(urlsplit(response.headers["location"]).query)
        assert query["redirect_uri"] == [f"{redirect_base}/auth/oidc/fake/callback"]
        (state_cookie,) = response.headers.get_list("set-cookie")
        assert state_cookie.startswith("ww_oidc=") and "secure" not in state_cookie.lower()


async def test_sign_ins_through_a_provider_are_audited_on_the_system_chain(api: Api) -> None:
    person = new_person()
    assert login_error(await sign_in(api, person)) is None
    refused = new_person(email_verified=False)
    assert login_error(await sign_in(api, refused)) == "EMAIL_NOT_VERIFIED"
    events = [e for e in await chain(api.services, SYSTEM_OWNER) if "login_oidc" in e.action]
    ok, failed = events[-2], events[-1]
    me = (await api.client().ok(ME))["me"]["user"]["id"]
    assert (ok.action, ok.outcome, ok.target_ids) == ("auth.login_oidc", "ok", ["fake"])
    assert ok.actor_id == decode_id(me, "User")
    assert (failed.action, failed.outcome) == ("auth.login_oidc_failed", "failed")
    assert failed.target_ids == ["fake", "EMAIL_NOT_VERIFIED"] and failed.actor_id is None


async def test_provider_callbacks_are_rate_limited_per_ip(
    database: Settings, provider: FakeProvider
) -> None:
    provider.reset()
    settings = database.model_copy(
        update={
            "oidc_providers": provider_settings(provider.base_url),
            "rate_limit_ip_auth_burst": 2,
            "rate_limit_ip_auth_per_minute": 1,
            "rate_limit_key_prefix": f"test:{uuid.uuid4().hex}:",
        }
    )
    services = build_services(settings)
    transport = httpx.ASGITransport(app=create_app(settings, services))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=API) as http:
            limited = Api(http, transport, services, provider)
            answers = [login_error(await sign_in(limited, new_person())) for _ in range(3)]
            assert answers == [None, None, "RATE_LIMITED"]
    finally:
        await services.engine.dispose()
