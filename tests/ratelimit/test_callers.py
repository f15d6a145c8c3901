"""Who is charged: told apart cheaply (no database); subscription starts; the charge hook."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid

import pytest
from graphql import GraphQLError, OperationType
from starlette.requests import HTTPConnection

from api.ratelimit import Policy, RateLimiter
from domain.core.settings import Settings
from domain.identity.tokens import TokenSigner
from schema.context import AppServices, RequestContext
from schema.cost import OperationCharge
from tests.ratelimit.conftest import build_limiter


def connection(
    headers: dict[str, str], ip: str = "192.0.2.1", kind: str = "http"
) -> HTTPConnection:
    scope = {
        "type": kind,
        "path": "/graphql",
        "scheme": "https" if kind == "http" else "wss",
        "server": ("wealthwise.test", 443),
        "client": ("192.0.2.1", 40000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    return HTTPConnection(scope)


@pytest.fixture
def limiter(plain_settings: Settings) -> RateLimiter:
    return build_limiter(
        plain_settings,
        TokenSigner.from_settings(plain_settings),
        rate_limit_subscription_per_minute=1,
        rate_limit_subscription_burst=2,
    )


def test_an_access_jwt_is_charged_to_its_user(limiter: RateLimiter) -> None:
    user_id = uuid.uuid4()
    token = limiter.signer.issue(user_id, uuid.uuid4())
    assert limiter.user_subject(connection({"Authorization": f"Bearer {token}"})) == (
        f"user:{user_id}"
    )
    # The session cookie names the same user (`__Host-` prefixed over TLS).
    cookie = {"Cookie": f"__Host-ww_access={token}"}
    assert limiter.user_subject(connection(cookie)) == f"user:{user_id}"


def test_an_api_token_is_charged_to_a_hash_of_itself(limiter: RateLimiter) -> None:
    token = "wwt_" + "a" * 40
    subject = limiter.user_subject(connection({"Authorization": f"Bearer {token}"}))
    assert subject == "token:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    other = limiter.user_subject(connection({"Authorization": "Bearer wwt_" + "b" * 40}))
    assert other != subject


def test_a_forged_or_foreign_token_is_anonymous(limiter: RateLimiter) -> None:
    foreign = TokenSigner(b"another-secret-entirely-0123456789", 60)
    forged = foreign.issue(uuid.uuid4(), uuid.uuid4())
    assert limiter.user_subject(connection({"Authorization": f"Bearer {forged}"})) is None
    assert limiter.user_subject(connection({"Authorization": "Bearer not-a-jwt"})) is None
    assert limiter.user_subject(connection({})) is None


async def test_subscription_starts_are_charged_to_their_own_buckets(
    limiter: RateLimiter, services: AppServices
) -> None:
    services = dataclasses.replace(services, signer=limiter.signer, limiter=limiter)
    token = limiter.signer.issue(uuid.uuid4(), uuid.uuid4())
    socket = connection({"Authorization": f"Bearer {token}"}, kind="websocket")
    context = RequestContext(request=socket, response=None, services=services)
    start = OperationCharge(cost=2, operation=OperationType.SUBSCRIPTION)
    await limiter.admit(context, start)
    await limiter.admit(context, start)
    with pytest.raises(GraphQLError) as refused:
        await limiter.admit(context, start)
    assert refused.value.extensions == {"code": "RATE_LIMITED", "retryAfter": 60}
    # Queries of the same caller are not subscription starts: still served.
    await limiter.admit(context, OperationCharge(cost=2, operation=OperationType.QUERY))


async def test_the_charge_hook_charges_one_named_bucket(limiter: RateLimiter) -> None:
    assert (await limiter.charge("user:asha")).allowed
    assert (await limiter.charge("user:asha")).allowed
    refused = await limiter.charge("user:asha")
    assert not refused.allowed and refused.retry_after == 60
    assert (await limiter.charge("user:rohan")).allowed
    roomy = Policy("realtime-events", rate=600, burst=100)
    assert (await limiter.charge("user:asha", cost=50, policy=roomy)).allowed
