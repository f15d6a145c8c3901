"""Settings from `WEALTHWISE_*` environment variables, with embedded defaults."""

from __future__ import annotations

from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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
