"""Key rotation changes every key of a database: each test gets a database of its own
(both backends), and API processes re-read their data keys every 0.2 s."""

from __future__ import annotations

import pytest

from domain.core.settings import Settings

REFRESH_SECONDS = 0.2


@pytest.fixture
def database(fresh_database: Settings) -> Settings:
    return fresh_database.model_copy(update={"key_refresh_seconds": REFRESH_SECONDS})
