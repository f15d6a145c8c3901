"""Settings from `WEALTHWISE_*` environment variables, with embedded defaults."""

from __future__ import annotations

from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class RetiredJwtSecret(BaseModel):
    """A JWT secret that no longer signs; its tokens verify until retired_at + their lifetime."""

    secret: SecretStr
    retired_at: AwareDatetime


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
    # Retired signing secrets, JSON: [{"secret": "...", "retired_at": "2026-11-27T23:00:00Z"}]
    jwt_previous_secrets: list[RetiredJwtSecret] = []
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
