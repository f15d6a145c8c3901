"""GCRA semantics, the same on the Redis script and on the in-process fallback."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
import redis.asyncio as redis

from api.ratelimit import MICROS, Charge, Policy, RateLimiter
from domain.core.settings import Settings
from domain.identity.tokens import TokenSigner
from tests.ratelimit.conftest import build_limiter

# 20 units a second (one every 50 ms), at most 5 at once.
FAST = Policy("fast", rate=20, burst=5, period=1.0)
INTERVAL = FAST.interval_us / MICROS


@dataclass
class Buckets:
    limiter: RateLimiter
    wait: Callable[[float], Awaitable[None]]
    exact: bool  # the fake clock stands still between calls; Redis's does not

    async def hit(self, subject: str, cost: int = 1, policy: Policy = FAST) -> bool:
        return (await self.limiter.hit([Charge(policy, subject, cost)])).allowed


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    async def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(params=["redis", "memory"])
async def buckets(
    request: pytest.FixtureRequest, plain_settings: Settings, key_prefix: str
) -> AsyncIterator[Buckets]:
    signer = TokenSigner.from_settings(plain_settings)
    if request.param == "memory":
        clock = FakeClock()
        limiter = RateLimiter(plain_settings, signer, b"k", clock=clock)
        yield Buckets(limiter, clock.advance, exact=True)
        return
    url: str = request.getfixturevalue("redis_url")
    limiter = build_limiter(
        plain_settings,
        signer,
        redis_url=url,
        rate_limit_key_prefix=key_prefix,
        rate_limit_redis_timeout_ms=2000,
    )
    yield Buckets(limiter, asyncio.sleep, exact=False)
    assert not limiter.using_fallback, "the Redis test fell back to the in-process buckets"
    await limiter.aclose()


async def test_a_full_bucket_admits_the_burst_then_refuses(buckets: Buckets) -> None:
    allowed = [await buckets.hit("a") for _ in range(FAST.burst + 2)]
    assert allowed == [True] * FAST.burst + [False, False]


async def test_the_bucket_refills_at_the_steady_rate(buckets: Buckets) -> None:
    for _ in range(FAST.burst):
        assert await buckets.hit("a")
    assert not await buckets.hit("a")
    await buckets.wait(INTERVAL * 1.3)  # one unit back, not two
    assert await buckets.hit("a")
    assert not await buckets.hit("a")
    await buckets.wait(INTERVAL * (FAST.burst + 0.5))  # idle long enough: a whole burst
    assert [await buckets.hit("a") for _ in range(FAST.burst + 1)] == [True] * 5 + [False]


async def test_outcomes_report_remaining_retry_after_and_reset(buckets: Buckets) -> None:
    remaining = []
    for _ in range(FAST.burst):
        verdict = await buckets.limiter.hit([Charge(FAST, "a")])
        remaining.append(verdict.outcomes[0].remaining)
    assert remaining == [4, 3, 2, 1, 0]
    assert verdict.outcomes[0].reset_after_us <= FAST.burst * FAST.interval_us
    refused = await buckets.limiter.hit([Charge(FAST, "a", cost=2)])
    outcome = refused.outcomes[0]
    assert not refused.allowed and outcome.remaining == 0
    # Two units short: they come back in two intervals (a little less on a moving clock).
    assert 1.5 * FAST.interval_us < outcome.retry_after_us <= 2 * FAST.interval_us
    if buckets.exact:
        assert outcome.retry_after_us == 2 * FAST.interval_us
    assert refused.retry_after == 1  # whole seconds, rounded up
    assert refused.headers()["Retry-After"] == "1"


async def test_a_costly_charge_waits_for_enough_units(buckets: Buckets) -> None:
    assert await buckets.hit("a", cost=4)
    assert not await buckets.hit("a", cost=2)  # one unit left: refused, nothing charged
    assert await buckets.hit("a", cost=1)
    assert not await buckets.hit("a", cost=1)


async def test_a_charge_above_the_burst_takes_the_whole_bucket(buckets: Buckets) -> None:
    assert await buckets.hit("a", cost=FAST.burst * 10)
    assert not await buckets.hit("a")


async def test_buckets_of_other_subjects_are_independent(buckets: Buckets) -> None:
    for _ in range(FAST.burst):
        assert await buckets.hit("a")
    assert not await buckets.hit("a")
    assert await buckets.hit("b")


async def test_a_refused_request_charges_none_of_its_buckets(buckets: Buckets) -> None:
    for _ in range(FAST.burst):
        assert await buckets.hit("full")
    roomy = Charge(FAST, "roomy")
    refused = await buckets.limiter.hit([roomy, Charge(FAST, "full")])
    assert not refused.allowed
    assert [o.allowed for o in refused.outcomes] == [True, False]  # the stricter answer wins
    # "roomy" was not charged: it still has its whole burst.
    assert [await buckets.hit("roomy") for _ in range(FAST.burst + 1)] == [True] * 5 + [False]


async def test_the_same_bucket_twice_in_one_request_is_charged_once_with_the_sum(
    buckets: Buckets,
) -> None:
    verdict = await buckets.limiter.hit([Charge(FAST, "a", 2), Charge(FAST, "a", 2)])
    assert verdict.allowed and [o.remaining for o in verdict.outcomes] == [1]


async def test_the_headers_follow_the_ratelimit_draft(buckets: Buckets) -> None:
    slow = Policy("slow", rate=6, burst=3, period=60.0)  # one every 10 s
    verdict = await buckets.limiter.hit([Charge(FAST, "a"), Charge(slow, "a")])
    headers = verdict.headers()
    assert headers["RateLimit-Policy"] == '"fast";q=5;w=1, "slow";q=3;w=30'
    assert headers["RateLimit"] == '"fast";r=4;t=1, "slow";r=2;t=10'
    assert "Retry-After" not in headers
    for _ in range(2):
        await buckets.limiter.hit([Charge(slow, "a")])
    refused = await buckets.limiter.hit([Charge(FAST, "a"), Charge(slow, "a")])
    assert refused.headers()["Retry-After"] == "10"
    assert refused.headers()["RateLimit"] == '"fast";r=3;t=1, "slow";r=0;t=30'


async def test_redis_keys_expire_once_the_bucket_is_full_again(
    plain_settings: Settings, redis_url: str, key_prefix: str
) -> None:
    signer = TokenSigner.from_settings(plain_settings)
    limiter = build_limiter(
        plain_settings, signer, redis_url=redis_url, rate_limit_key_prefix=key_prefix
    )
    try:
        await limiter.hit([Charge(FAST, "a", cost=3)])
        client = redis.Redis.from_url(redis_url)
        try:
            ttl_ms = await client.pttl(f"{key_prefix}fast:a")
        finally:
            await client.aclose()
        # Three units are back after three intervals: the key lives no longer than that.
        assert 0 < ttl_ms <= math.ceil(3 * INTERVAL * 1000) + 1
    finally:
        await limiter.aclose()
