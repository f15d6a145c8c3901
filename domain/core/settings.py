"""Settings from `WEALTHWISE_*` environment variables, with embedded defaults."""

from __future__ import annotations

from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WEALTHWISE_", extra="ignore")

    environment: Literal["development", "production", "test"] = "development"
    data_dir: Path = Path("data")
    # Unset: a SQLite file in the data dir. Set: e.g. postgresql+asyncpg://user@host/db
    database_url: str | None = None
    redis_url: str | None = None
    # Key-encryption key, base64 of 32 bytes; unset: a key file in the data dir (mode 0600).
    kek: SecretStr | None = None
    kek_file: Path | None = None
    # JWT signing secret; unset: a secret file in the data dir (mode 0600).
    jwt_secret: SecretStr | None = None
    access_token_minutes: int = 15
    refresh_token_days: int = 30
    host: str = "127.0.0.1"
    port: int = 8000
    log_format: Literal["console", "json"] | None = None
    log_level: str = "INFO"
    graphiql: bool = True
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

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'wealthwise.db').resolve()}"

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
