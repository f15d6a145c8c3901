"""Settings from `WEALTHWISE_*` environment variables, with embedded defaults."""

from __future__ import annotations

import json
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class OidcProviderSettings(BaseModel):
    """One sign-in provider. The presets `google` and `github` need only the client id and
    secret; any other OpenID Connect provider names its discovery document."""

    model_config = ConfigDict(extra="forbid")

    client_id: str
    client_secret: SecretStr
    # "google" or "github"; unset: the provider's own name when that is a preset.
    preset: Literal["google", "github"] | None = None
    server_metadata_url: str | None = None  # the OIDC discovery document
    scopes: str | None = None
    display_name: str | None = None
    # GitHub-style OAuth2 (no discovery): overridable, e.g. for GitHub Enterprise.
    authorize_url: str | None = None
    token_url: str | None = None
    api_base_url: str | None = None


class RetiredJwtSecret(BaseModel):
    """A JWT secret that no longer signs; its tokens verify until retired_at + their lifetime."""

    secret: SecretStr
    retired_at: AwareDatetime


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WEALTHWISE_", extra="ignore")

    environment: Literal["development", "production", "test"] = "development"
    data_dir: Path = Path("data")
    # Unset: a SQLite file in the data dir. Set: e.g. postgresql+asyncpg://owner@host/db,
    # the role that owns the tables: migrations and the admin CLI connect with it.
    database_url: str | None = None
    # PostgreSQL: the API and workers connect as this role, which owns nothing and cannot
    # bypass row-level security (the migrations create it and grant it what it needs).
    # Unset: database_url with the user swapped for app_db_role (and app_db_password).
    app_database_url: str | None = None
    app_db_role: str = Field(default="wealthwise_app", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    app_db_password: SecretStr | None = None
    redis_url: str | None = None
    # Key-encryption key, base64 of 32 bytes; unset: a key file in the data dir (mode 0600).
    kek: SecretStr | None = None
    kek_file: Path | None = None
    # Earlier KEKs (comma-separated base64) still accepted for unwrapping during a rotation.
    kek_previous: SecretStr | None = None
    # How old a process's cached data keys may get; a rotated key is used for writes only
    # once every process has had time to load it (see domain/encryption/rotation.py).
    key_refresh_seconds: float = 5.0
    # JWT signing secret; unset: a secret file in the data dir (mode 0600).
    jwt_secret: SecretStr | None = None
    # Retired signing secrets, JSON: [{"secret": "...", "retired_at": "2026-11-27T23:00:00Z"}]
    jwt_previous_secrets: list[RetiredJwtSecret] = []
    access_token_minutes: int = 15
    refresh_token_days: int = 30
    host: str = "127.0.0.1"
    port: int = 8000
    log_format: Literal["console", "json"] | None = None
    log_level: str = "INFO"
    # GraphiQL at GET /graphql and schema introspection; unset: on except in production.
    graphiql: bool | None = None
    introspection: bool | None = None
    graphql_max_depth: int = 12
    graphql_max_tokens: int = 5_000
    graphql_max_aliases: int = 30
    # Larger request bodies are refused with 413 (counted while streaming, never buffered).
    max_request_bytes: int = 1_048_576
    # An operation running longer is cancelled and rolled back; also PostgreSQL's
    # statement_timeout for the API's connections.
    query_timeout_seconds: float = 10.0
    # Origins (scheme://host[:port]) whose pages may open WebSockets and POST; unset: the
    # API's own origin from host/port (plus localhost and 127.0.0.1 in development).
    # JSON list or comma-separated.
    allowed_origins: Annotated[list[str] | None, NoDecode] = None
    # The month the demo seed ends in (default: the current month).
    demo_anchor: date | None = None
    sql_echo: bool = False
    # Rate limits (GCRA; in Redis when redis_url is set, else in-process). Budgets are in
    # GraphQL cost units (see schema/cost.py) per minute, with a burst: the most that may be
    # spent at once. Per user (access token) and per client IP; the stricter answer wins.
    rate_limit_key_prefix: str = "wealthwise:ratelimit:"
    rate_limit_cost_per_minute: int = 3_000
    rate_limit_cost_burst: int = 10_000
    rate_limit_ip_cost_per_minute: int = 6_000
    rate_limit_ip_cost_burst: int = 20_000
    # An operation estimated above this is refused before it runs (QUERY_TOO_COMPLEX).
    rate_limit_max_cost: int = 5_000
    # login / register / refreshSession / acceptInvitation, per target (a hash of the email
    # or token) and per IP.
    rate_limit_auth_per_minute: int = 5
    rate_limit_auth_burst: int = 5
    rate_limit_ip_auth_per_minute: int = 10
    rate_limit_ip_auth_burst: int = 10
    # WebSocket connection attempts and subscription starts, per IP and per user.
    rate_limit_websocket_per_minute: int = 30
    rate_limit_websocket_burst: int = 10
    rate_limit_subscription_per_minute: int = 60
    rate_limit_subscription_burst: int = 20
    # Redis is asked with short timeouts; on failure the in-process limiter answers and
    # Redis is tried again after this many seconds.
    rate_limit_redis_timeout_ms: int = 50
    rate_limit_redis_retry_seconds: float = 5.0

    # Seal every audit chain whose head moved this often (0: only on demand).
    audit_checkpoint_minutes: float = 5
    # The outbox relay: how often it looks for events committed by other processes (a
    # commit in its own process wakes it at once), how many it publishes per round, and
    # how long published events are kept for clients that resume with `since`.
    outbox_poll_seconds: float = 0.2
    outbox_batch: int = 500
    outbox_retention_days: float = 7

    # Password hashing: argon2id's parameters (the argon2-cffi defaults, RFC 9106's second
    # recommendation: 64 MiB, 3 passes, 4 lanes). Hashes made with other parameters still
    # verify. The test suite lowers them (each run costs ~0.2 s here, and tests sign up
    # thousands of users); production should keep them or raise them.
    password_hash_memory_kib: int = Field(default=65_536, ge=64)
    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_parallelism: int = Field(default=4, ge=1, le=8)

    # Realtime fan-out (api/realtime/hub.py): channels are named with this prefix; each local
    # subscriber holds at most realtime_queue_size events and is told to resync when it
    # overflows, and closed after realtime_max_overflows overflows without catching up.
    realtime_channel_prefix: str = "wealthwise:events:"
    realtime_queue_size: int = Field(default=1_000, ge=1)
    realtime_max_overflows: int = Field(default=3, ge=1)
    # Subscribers of one process that ask the same thing (workspace, role, document,
    # variables, no `since`) share one execution per event (api/realtime/fanout.py).
    realtime_shared_feeds: bool = True
    # A full garbage collection that pauses the process this long is logged (gc_pause).
    gc_pause_warn_ms: float = Field(default=100, ge=0)
    # Allocations between young collections; 0 keeps Python's default (700). A process
    # holding thousands of WebSocket connections under a high event rate should set about
    # 50,000: with 700, objects living a few milliseconds (a result on its way to a socket)
    # survive into the old generation and trigger full collections over every
    # connection's objects, seconds at 10,000 connections (bench/README.md). Not the
    # default: a timed-out operation's SQLite connection is released by the collector, and
    # collecting that rarely holds SQLite's write lock for long (see the closing note).
    gc_young_threshold: int = Field(default=0, ge=0)
    # Every gc_freeze_seconds (0: off) what survived is moved out of the collector's sight
    # (gc.freeze), so collections stop walking every connection's objects (250-350 ms
    # pauses every ~10 s at 10,000 subscribers, bench/README.md); every
    # gc_full_collect_seconds it is all collected once (1.2-1.7 s there), which frees cyclic
    # garbage among frozen objects. Off by default for the same SQLite reason as
    # gc_young_threshold; set both for many subscribers.
    gc_freeze_seconds: float = Field(default=0, ge=0)
    gc_full_collect_seconds: float = Field(default=1800, ge=0)
    # Redis pub/sub: reconnect backoff cap (the relay's retry cap too), and how long a
    # silent connection may idle before a PING checks it (twice that without an answer:
    # reconnect).
    realtime_reconnect_max_seconds: float = 2.0
    realtime_health_check_seconds: float = 5.0
    # WebSocket subscriptions (graphql-transport-ws at /graphql): operations per connection,
    # open connections per user in one API process, how long a client may take to send
    # connection_init, and how often a connection re-checks that its session or API token
    # is still live (it always ends when its access token expires).
    ws_max_subscriptions_per_connection: int = Field(default=20, ge=1)
    ws_max_connections_per_user: int = Field(default=20, ge=1)
    ws_connection_init_seconds: float = Field(default=10, gt=0)
    ws_recheck_seconds: float = Field(default=30, gt=0)
    # permessage-deflate on WebSockets, when a client offers it (browsers do): zlib state
    # of ~43 KB per connection (bench/ws_memory.py --deflate) for events that are small.
    ws_per_message_deflate: bool = False
    # Background jobs (workers/): "embedded" runs tasks, the scheduler's jobs and the
    # background loops inside the API process (taskiq's in-memory broker); "external" sends
    # tasks to a Redis stream that `wealthwise worker` consumes. Unset: external when
    # redis_url is set, else embedded.
    worker_mode: Literal["embedded", "external"] | None = None
    worker_queue: str = "wealthwise:tasks"  # the Redis stream
    worker_consumer_group: str = "wealthwise-workers"
    # A delivered task not acknowledged for this long (its worker died) is claimed by
    # another worker and run again: keep it above the longest task's run time.
    worker_reclaim_idle_seconds: float = 600
    # The stream is trimmed (approximately) to this many entries; acknowledged entries
    # stay in it until trimmed.
    worker_stream_maxlen: int = 100_000
    # How long `xreadgroup` blocks; the reclaim check runs between reads.
    worker_poll_seconds: float = 2
    # Attempts per task (the first run included), and the backoff between them:
    # retry_delay * 2**(attempt - 1), capped at retry_max_delay, plus up to 1 s of jitter.
    worker_max_attempts: int = 5
    worker_retry_delay_seconds: float = 1
    worker_retry_max_delay_seconds: float = 60
    # On SIGTERM, running tasks get this long to finish (the rest run again elsewhere).
    worker_shutdown_seconds: float = 30

    # The advisor's model (domain/advisor/llm): Anthropic Claude when a key is set, else the
    # built-in offline analyst. advisor_max_rounds bounds the model turns per answer (each
    # turn may call tools). The timeout is per network read (a stalled stream fails after
    # it) and the SDK retries overloaded (529), 5xx, 429 and timed-out requests
    # advisor_max_retries times with backoff, before the answer starts streaming.
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    advisor_model: str = "claude-sonnet-5-5"
    advisor_max_rounds: int = Field(default=4, ge=1)
    advisor_max_tokens: int = Field(default=2_048, ge=1)
    advisor_timeout_seconds: float = Field(default=60.0, gt=0)
    advisor_max_retries: int = Field(default=2, ge=0)

    # The advisor's retrieval (domain/advisor/). Embeddings: "local" runs all-MiniLM-L6-v2
    # in-process from the installed model package (requirements-model.lock); "openai" calls
    # the embeddings API at openai_base_url with openai_api_key.
    embeddings: Literal["local", "openai"] = "local"
    openai_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    openai_embedding_model: str = "text-embedding-3-small"
    openai_embedding_dimensions: int = Field(default=1536, ge=1)
    openai_timeout_seconds: float = 30.0
    # Unset: Qdrant Edge in-process, in the data dir. Set: a Qdrant server (qdrant-client).
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None
    qdrant_collection: str = "wealthwise_transactions"

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @property
    def graphiql_enabled(self) -> bool:
        return self.graphiql if self.graphiql is not None else self.environment != "production"

    @property
    def introspection_enabled(self) -> bool:
        if self.introspection is not None:
            return self.introspection
        return self.environment != "production"

    @property
    def resolved_allowed_origins(self) -> list[str]:
        if self.allowed_origins is not None:
            return self.allowed_origins
        hosts = [] if self.host in ("0.0.0.0", "::") else [self.host]
        if self.environment != "production":
            hosts += ["localhost", "127.0.0.1"]
        hosts = [f"[{host}]" if ":" in host else host for host in dict.fromkeys(hosts)]
        return [f"{scheme}://{host}:{self.port}" for host in hosts for scheme in ("http", "https")]

    # Sign-in providers by name, as JSON: {"google": {"client_id": ..., "client_secret": ...}}
    oidc_providers: dict[str, OidcProviderSettings] = {}
    # The API's external URL (https://host[:port]) for OAuth redirect URIs; unset: per request.
    public_url: str | None = None

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'wealthwise.db').resolve()}"

    @cached_property
    def resolved_app_database_url(self) -> str:
        """Where the API connects: on PostgreSQL, as the unprivileged app role."""
        if self.app_database_url:
            return self.app_database_url
        if self.is_sqlite:
            return self.resolved_database_url
        from sqlalchemy.engine import make_url

        password = self.app_db_password.get_secret_value() if self.app_db_password else None
        url = make_url(self.resolved_database_url).set(username=self.app_db_role, password=password)
        return url.render_as_string(hide_password=False)

    @property
    def resolved_worker_mode(self) -> Literal["embedded", "external"]:
        if self.worker_mode is not None:
            return self.worker_mode
        return "external" if self.redis_url else "embedded"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def resolved_log_format(self) -> Literal["console", "json"]:
        if self.log_format:
            return self.log_format
        return "json" if self.environment == "production" else "console"

    def ensure_data_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.data_dir


def get_settings() -> Settings:
    return Settings()
