"""`wealthwise keys rotate-jwt`: embedded key files, or the values to deploy."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from domain.core.settings import Settings
from domain.identity.tokens import TokenSigner, key_id


def test_rotate_jwt_rotates_the_embedded_key_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WEALTHWISE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("WEALTHWISE_JWT_SECRET", raising=False)
    before = TokenSigner.from_settings(Settings())
    token = before.issue(uuid.uuid4(), uuid.uuid4())
    result = CliRunner().invoke(app, ["keys", "rotate-jwt"])
    assert result.exit_code == 0, result.output
    after = TokenSigner.from_settings(Settings())
    assert after.kid != before.kid and after.kid in result.output
    assert after.verify(token).expires_at > 0


def test_rotate_jwt_prints_the_environment_to_deploy_when_the_secret_is_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WEALTHWISE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("WEALTHWISE_JWT_SECRET", "the-current-secret-0123456789abcdef")
    result = CliRunner().invoke(app, ["keys", "rotate-jwt"])
    assert result.exit_code == 0, result.output
    lines = dict(
        line.split("=", 1) for line in result.output.splitlines() if line.startswith("WEALTH")
    )
    previous = json.loads(lines["WEALTHWISE_JWT_PREVIOUS_SECRETS"].strip("'"))
    assert [entry["secret"] for entry in previous] == ["the-current-secret-0123456789abcdef"]
    new_secret = lines["WEALTHWISE_JWT_SECRET"]
    assert key_id(new_secret.encode()) != key_id(b"the-current-secret-0123456789abcdef")
    assert not list(tmp_path.iterdir())  # nothing written: the operator deploys the values
