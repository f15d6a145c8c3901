"""Rate limits: GCRA buckets in Redis (one Lua script), with an in-process fallback.

Every request is charged to a bucket per client IP and, when it carries a credential, per
user; all buckets of one request are checked and charged together, atomically, and the
stricter answer wins (a refused request charges nothing). GraphQL operations are charged
their estimated cost (schema/cost.py); login-like mutations also charge small per-IP and
per-target buckets; WebSocket upgrades and subscription starts have buckets of their own.

GCRA (the generic cell rate algorithm) keeps one number per bucket, the theoretical arrival
time (TAT): a bucket of `burst` units refilling one unit every `interval` admits a charge of
`cost` at `now` when `max(TAT, now) + cost * interval - burst * interval <= now`.
No maintained Python library runs GCRA in Redis with several keys in one atomic step, so
the script (and its Python twin for the fallback) is written here.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from graphql import GraphQLError, OperationType
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from domain.core.errors import Unauthenticated
from domain.core.settings import Settings
from domain.identity.tokens import TokenSigner
from schema.context import REFRESH_COOKIE, RequestContext, access_token, cookie_name
from schema.cost import OperationCharge

log = structlog.get_logger(__name__)
API_TOKEN_PREFIX = "wwt_"
MICROS = 1_000_000

# KEYS: one bucket each. ARGV: per key, its emission interval (microseconds), burst (units)
# and cost (units, at most the burst). Time is Redis's own clock. Returns per key: allowed
# (0/1), remaining units, retry after (us), reset after (us). Charges nothing unless every
# bucket admits the request.
GCRA_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local out, tats, admitted = {}, {}, true
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[3 * i - 2])
  local burst = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i])
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local new_tat = tat + cost * interval
  local allow_at = new_tat - burst * interval
  if allow_at > now then
    admitted = false
    out[#out + 1] = 0
    out[#out + 1] = math.floor((now - (tat - burst * interval)) / interval)
    out[#out + 1] = allow_at - now
    out[#out + 1] = tat - now
  else
    out[#out + 1] = 1
    out[#out + 1] = math.floor((now - allow_at) / interval)
    out[#out + 1] = 0
    out[#out + 1] = new_tat - now
  end
  tats[i] = new_tat
end
if admitted then
  for i, key in ipairs(KEYS) do
    local ttl = math.ceil((tats[i] - now) / 1000) + 1
    redis.call('SET', key, string.format('%d', tats[i]), 'PX', ttl)
  end
end
return out
"""


@dataclass(frozen=True)
class Policy:
    """`burst` units at once, refilled at `rate` units per `period` seconds."""

    name: str
    rate: int
    burst: int
    period: float = 60.0

    @property
    def interval_us(self) -> int:
        return max(1, round(self.period * MICROS / self.rate))

    @property
    def window(self) -> int:
        """Seconds to refill a whole burst (the `w` of the RateLimit-Policy header)."""
        return max(1, math.ceil(self.burst * self.interval_us / MICROS))


@dataclass(frozen=True)
class Charge:
    policy: Policy
    subject: str  # who is charged: an IP, a user id, a hash of a token or an email
    cost: int = 1


@dataclass(frozen=True)
class Outcome:
    charge: Charge
    allowed: bool
    remaining: int
    retry_after_us: int
    reset_after_us: int


@dataclass(frozen=True)
class Verdict:
    outcomes: tuple[Outcome, ...]

    @property
    def allowed(self) -> bool:
        return all(outcome.allowed for outcome in self.outcomes)

    @property
    def retry_after(self) -> int:
        """Whole seconds until every refusing bucket admits the request (rounded up)."""
        wait = max((o.retry_after_us for o in self.outcomes if not o.allowed), default=0)
        return max(1, math.ceil(wait / MICROS)) if not self.allowed else 0

    def headers(self) -> dict[str, str]:
        """RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers-10), plus
        Retry-After when refused."""
        policies = ", ".join(
            f'"{o.charge.policy.name}";q={o.charge.policy.burst};w={o.charge.policy.window}'
            for o in self.outcomes
        )
        states = ", ".join(
            f'"{o.charge.policy.name}";r={max(o.remaining, 0)};'
            f"t={math.ceil(o.reset_after_us / MICROS)}"
            for o in self.outcomes
        )
        headers = {"RateLimit-Policy": policies, "RateLimit": states} if self.outcomes else {}
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


def gcra(
    now_us: int, tat_us: int | None, policy: Policy, cost: int
) -> tuple[bool, int, int, int, int]:
    """The Lua script's arithmetic for one bucket: (allowed, new TAT, remaining, retry after,
    reset after), all in microseconds but `remaining` (units)."""
    interval, burst = policy.interval_us, policy.burst
    tat = max(tat_us if tat_us is not None else now_us, now_us)
    new_tat = tat + cost * interval
    allow_at = new_tat - burst * interval
    if allow_at > now_us:
        remaining = (now_us - (tat - burst * interval)) // interval
        return False, new_tat, remaining, allow_at - now_us, tat - now_us
    return True, new_tat, (now_us - allow_at) // interval, 0, new_tat - now_us


class MemoryBuckets:
    """The in-process twin of the Lua script (one event loop: each call is atomic)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000):
        self._clock = clock
        self._tats: dict[str, int] = {}
        self._max_keys = max_keys

    def decide(self, keyed: Sequence[tuple[str, Charge]]) -> list[Outcome]:
        now = int(self._clock() * MICROS)
        outcomes, tats = [], []
        for key, charge in keyed:
            allowed, new_tat, remaining, retry, reset = gcra(
                now, self._tats.get(key), charge.policy, charge.cost
            )
            outcomes.append(Outcome(charge, allowed, remaining, retry, reset))
            tats.append(new_tat)
        if all(outcome.allowed for outcome in outcomes):
            for (key, _charge), tat in zip(keyed, tats, strict=True):
                self._tats.pop(key, None)  # re-insert: the dict's order is last use
                self._tats[key] = tat
            self._prune(now)
        return outcomes

    def _prune(self, now: int) -> None:
        if len(self._tats) <= self._max_keys:
            return
        self._tats = {key: tat for key, tat in self._tats.items() if tat > now}
        while len(self._tats) > self._max_keys:
            del self._tats[next(iter(self._tats))]


@dataclass(frozen=True)
class Policies:
    user_cost: Policy
    ip_cost: Policy
    target_auth: Policy
    ip_auth: Policy
    user_websocket: Policy
    ip_websocket: Policy
    user_subscription: Policy
    ip_subscription: Policy

    @classmethod
    def from_settings(cls, s: Settings) -> Policies:
        return cls(
            user_cost=Policy("user-cost", s.rate_limit_cost_per_minute, s.rate_limit_cost_burst),
            ip_cost=Policy("ip-cost", s.rate_limit_ip_cost_per_minute, s.rate_limit_ip_cost_burst),
            target_auth=Policy(
                "target-auth", s.rate_limit_auth_per_minute, s.rate_limit_auth_burst
            ),
            ip_auth=Policy("ip-auth", s.rate_limit_ip_auth_per_minute, s.rate_limit_ip_auth_burst),
            user_websocket=Policy(
                "user-websocket", s.rate_limit_websocket_per_minute, s.rate_limit_websocket_burst
            ),
            ip_websocket=Policy(
                "ip-websocket", s.rate_limit_websocket_per_minute, s.rate_limit_websocket_burst
            ),
            user_subscription=Policy(
                "user-subscription",
                s.rate_limit_subscription_per_minute,
                s.rate_limit_subscription_burst,
            ),
            ip_subscription=Policy(
                "ip-subscription",
                s.rate_limit_subscription_per_minute,
                s.rate_limit_subscription_burst,
            ),
        )


def rate_limited(verdict: Verdict) -> GraphQLError:
    seconds = verdict.retry_after
    return GraphQLError(
        f"Too many requests: try again in {seconds} s",
        extensions={"code": "RATE_LIMITED", "retryAfter": seconds},
    )


class RateLimiter:
    """Buckets in Redis when `redis_url` is set, else (and whenever Redis fails) in-process."""

    def __init__(
        self,
        settings: Settings,
        signer: TokenSigner,
        key_secret: bytes,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policies = Policies.from_settings(settings)
        self.signer = signer
        self._prefix = settings.rate_limit_key_prefix
        self._key_secret = key_secret
        self._clock = clock
        self._memory = MemoryBuckets(clock)
        self._retry_seconds = settings.rate_limit_redis_retry_seconds
        self._redis_down = False
        self._redis_retry_at = 0.0
        self._redis: Redis | None = None
        if settings.redis_url:
            timeout = settings.rate_limit_redis_timeout_ms / 1000
            self._redis = Redis.from_url(
                settings.redis_url,
                socket_connect_timeout=timeout,
                socket_timeout=timeout,
                retry=Retry(NoBackoff(), 0),  # a slow answer is worse than the fallback's
            )
            self._script = self._redis.register_script(GCRA_SCRIPT)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    async def hit(self, charges: Sequence[Charge]) -> Verdict:
        """Check and charge every bucket at once: all are charged, or (refused) none."""
        merged: dict[str, Charge] = {}
        for charge in charges:
            key = f"{self._prefix}{charge.policy.name}:{charge.subject}"
            cost = charge.cost + (merged[key].cost if key in merged else 0)
            merged[key] = Charge(charge.policy, charge.subject, min(cost, charge.policy.burst))
        keyed = list(merged.items())
        if not keyed:
            return Verdict(())
        return Verdict(tuple(await self._decide(keyed)))

    async def charge(self, key: str, cost: int = 1, policy: Policy | None = None) -> Verdict:
        """Charge one bucket (default: subscription starts), e.g. `charge(f"user:{id}")`."""
        return await self.hit([Charge(policy or self.policies.user_subscription, key, cost)])

    async def _decide(self, keyed: list[tuple[str, Charge]]) -> list[Outcome]:
        if self._redis is not None and self._clock() >= self._redis_retry_at:
            args: list[int] = []
            for _key, charge in keyed:
                args += [charge.policy.interval_us, charge.policy.burst, charge.cost]
            try:
                raw = await self._script(keys=[key for key, _ in keyed], args=args)
            except (RedisError, OSError) as error:
                self._redis_retry_at = self._clock() + self._retry_seconds
                if not self._redis_down:
                    self._redis_down = True
                    log.warning("rate_limit_redis_down", error=type(error).__name__)
            else:
                if self._redis_down:
                    self._redis_down = False
                    log.warning("rate_limit_redis_recovered")
                return [
                    Outcome(charge, bool(raw[4 * i]), *map(int, raw[4 * i + 1 : 4 * i + 4]))
                    for i, (_key, charge) in enumerate(keyed)
                ]
        return self._memory.decide(keyed)

    @property
    def using_fallback(self) -> bool:
        return self._redis is None or self._redis_down

    # --- who is charged -------------------------------------------------------------------

    def user_subject(self, connection: HTTPConnection, token: str | None = None) -> str | None:
        """The caller without a database: the verified access JWT's subject, a hash of an
        opaque API token, or None (anonymous: charged per IP only). `token` is the one the
        caller signed in with where that is not the request's header or cookie (a WebSocket
        sends it in connection_init)."""
        token = token or access_token(connection)
        if token is None:
            return None
        if token.startswith(API_TOKEN_PREFIX):
            return "token:" + hashlib.sha256(token.encode()).hexdigest()[:32]
        try:
            return f"user:{self.signer.verify(token).user_id}"
        except Unauthenticated:
            return None

    def target_subject(self, value: str) -> str:
        """A keyed hash, so that Redis never holds an email or a token."""
        return hmac.new(self._key_secret, value.encode(), hashlib.sha256).hexdigest()[:32]

    def _pair(
        self,
        connection: HTTPConnection,
        ip_policy: Policy,
        user_policy: Policy,
        cost: int,
        token: str | None = None,
    ) -> list[Charge]:
        charges = [Charge(ip_policy, _client_ip(connection), cost)]
        user = self.user_subject(connection, token)
        if user is not None:
            charges.append(Charge(user_policy, user, cost))
        return charges

    # --- the GraphQL cost gate (schema.cost.CostGate) -------------------------------------

    async def admit(self, context: RequestContext, charge: OperationCharge) -> None:
        connection, p = context.request, self.policies
        # The context's token: over a WebSocket it came in connection_init, not in a header.
        token = context.access_token()
        charges = self._pair(connection, p.ip_cost, p.user_cost, charge.cost, token)
        if charge.operation is OperationType.SUBSCRIPTION:
            charges += self._pair(connection, p.ip_subscription, p.user_subscription, 1, token)
        for attempt in charge.auth_attempts:
            charges.append(Charge(p.ip_auth, _client_ip(connection)))
            target = attempt.target
            if attempt.field == "refreshSession":
                target = connection.cookies.get(cookie_name(connection, REFRESH_COOKIE))
            if target:
                charges.append(Charge(p.target_auth, self.target_subject(target)))
        verdict = _log_refusal(await self.hit(charges))
        if context.response is not None:
            context.response.headers.update(verdict.headers())
            if not verdict.allowed:
                context.response.status_code = 429
        if not verdict.allowed:
            raise rate_limited(verdict)

    async def admit_sign_in(self, connection: HTTPConnection) -> Verdict:
        """A sign-in that arrives outside GraphQL (the OIDC callback): one attempt per IP."""
        return _log_refusal(await self.hit([Charge(self.policies.ip_auth, _client_ip(connection))]))

    async def admit_websocket(self, connection: HTTPConnection) -> Verdict:
        p = self.policies
        return _log_refusal(
            await self.hit(self._pair(connection, p.ip_websocket, p.user_websocket, 1))
        )


def _log_refusal(verdict: Verdict) -> Verdict:
    if not verdict.allowed:
        refused = [o.charge.policy.name for o in verdict.outcomes if not o.allowed]
        log.info("rate_limited", policies=refused, retry_after=verdict.retry_after)
    return verdict


def _client_ip(connection: HTTPConnection) -> str:
    # uvicorn's proxy_headers already put the forwarded address here for trusted proxies.
    return connection.client.host if connection.client else "unknown"


class RateLimitMiddleware:
    """Limits WebSocket connection attempts per IP and per user before the upgrade."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        verdict = await self.limiter.admit_websocket(HTTPConnection(scope))
        if verdict.allowed:
            await self.app(scope, receive, send)
            return
        websocket = WebSocket(scope, receive, send)
        if "websocket.http.response" in scope.get("extensions", {}):
            body: dict[str, Any] = {"errors": [rate_limited(verdict).formatted]}
            await websocket.send_denial_response(
                JSONResponse(body, status_code=429, headers=verdict.headers())
            )
        else:
            await websocket.close(code=1013, reason="Too many connection attempts")
