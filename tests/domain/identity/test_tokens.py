"""The JWT signer: expiry, tampering, and key rotation driven by an injected clock."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey

from domain.core.errors import Unauthenticated
from domain.core.settings import Settings
from domain.identity.tokens import RetiredSecret, TokenSigner, key_id, rotate_key_file

OLD, NEW, OTHER = b"old-secret-" * 3, b"new-secret-" * 3, b"someone-elses-secret-" * 2
TTL = 900
T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, claims: dict[str, object], kid: str | None) -> str:
    header: dict[str, object] = {"alg": "HS256"}
    if kid is not None:
        header["kid"] = kid
    return jwt.encode(header, claims, OctKey.import_key(secret))


def _claims(now: float, ttl: int = TTL) -> dict[str, object]:
    return {
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "iat": int(now),
        "exp": int(now) + ttl,
    }


def _refused(signer: TokenSigner, token: str) -> bool:
    try:
        signer.verify(token)
    except Unauthenticated:
        return True
    return False


def test_a_token_verifies_until_it_expires() -> None:
    clock = Clock(T0)
    signer = TokenSigner(OLD, TTL, clock=clock)
    user, session = uuid.uuid4(), uuid.uuid4()
    token = signer.issue(user, session)
    clock.now = T0 + TTL - 1
    claims = signer.verify(token)
    assert (claims.user_id, claims.session_id, claims.expires_at) == (user, session, T0 + TTL)
    clock.now = T0 + TTL + 1
    assert _refused(signer, token)


def test_every_kind_of_tampered_token_is_refused() -> None:
    clock = Clock(T0)
    signer = TokenSigner(
        NEW, TTL, [RetiredSecret(OLD, datetime.fromtimestamp(T0, UTC))], clock=clock
    )
    good = signer.issue(uuid.uuid4(), uuid.uuid4())
    assert not _refused(signer, good)
    header, payload, signature = good.split(".")
    other_payload = json.loads(_unb64(payload)) | {"sub": str(uuid.uuid4())}
    none_header = _b64(json.dumps({"alg": "none", "kid": signer.kid}).encode())
    swapped_kid = json.loads(_unb64(header)) | {"kid": key_id(OLD)}
    forged = {
        "payload changed": f"{header}.{_b64(json.dumps(other_payload).encode())}.{signature}",
        "signature changed": f"{header}.{payload}.{signature[::-1]}",
        "alg none": f"{none_header}.{payload}.",
        "kid of another key": f"{_b64(json.dumps(swapped_kid).encode())}.{payload}.{signature}",
        "unknown kid": _sign(NEW, _claims(T0), "0123456789abcdef"),
        "no kid": _sign(NEW, _claims(T0), None),
        "wrong secret, right kid": _sign(OTHER, _claims(T0), signer.kid),
        "not a jwt": "not-a-jwt",
    }
    for what, token in forged.items():
        assert _refused(signer, token), what


def test_a_rotated_out_key_verifies_during_the_token_lifetime_and_not_after() -> None:
    clock = Clock(T0)
    before = TokenSigner(OLD, TTL, clock=clock)
    old_token = before.issue(uuid.uuid4(), uuid.uuid4())
    retired_at = T0 + 60
    clock.now = retired_at
    after = TokenSigner(
        NEW, TTL, [RetiredSecret(OLD, datetime.fromtimestamp(retired_at, UTC))], clock=clock
    )
    new_token = after.issue(uuid.uuid4(), uuid.uuid4())
    assert after.kid != before.kid and after.key_ids == [after.kid, before.kid]
    assert not _refused(after, old_token) and not _refused(after, new_token)
    # A token of the old key that would otherwise still be valid (a long `exp`): refused once
    # the retirement plus the access-token lifetime has passed.
    long_lived = _sign(OLD, _claims(T0, ttl=10 * TTL), before.kid)
    clock.now = retired_at + TTL
    assert not _refused(after, long_lived)
    clock.now = retired_at + TTL + 1
    assert _refused(after, long_lived)
    assert after.key_ids == [after.kid]
    assert _refused(before, new_token)  # a process that never learnt the new key


def test_rotating_the_embedded_key_files_keeps_old_tokens_valid_for_their_lifetime(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, access_token_minutes=TTL // 60)
    first = TokenSigner.from_settings(settings)
    token = first.issue(uuid.uuid4(), uuid.uuid4())
    new_kid = rotate_key_file(settings)
    second = TokenSigner.from_settings(settings)
    assert second.kid == new_kid != first.kid
    assert not _refused(second, token)
    assert (tmp_path / "jwt.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "jwt-retired.json").stat().st_mode & 0o777 == 0o600
    # Rotating again after the first key's tokens have all expired drops it for good.
    later = datetime.fromtimestamp(datetime.now(UTC).timestamp() + TTL + 5, UTC)
    rotate_key_file(settings, now=later)
    retired = json.loads((tmp_path / "jwt-retired.json").read_text())
    assert len(retired) == 1
    assert _refused(TokenSigner.from_settings(settings), token)


def test_previous_secrets_come_from_the_environment_as_json(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    retired_at = datetime.now(UTC).isoformat()
    monkeypatch.setenv("WEALTHWISE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("WEALTHWISE_JWT_SECRET", NEW.decode())
    monkeypatch.setenv(
        "WEALTHWISE_JWT_PREVIOUS_SECRETS",
        json.dumps([{"secret": OLD.decode(), "retired_at": retired_at}]),
    )
    signer = TokenSigner.from_settings(Settings())
    old_token = TokenSigner(OLD, TTL).issue(uuid.uuid4(), uuid.uuid4())
    assert not _refused(signer, old_token)
    assert _refused(signer, TokenSigner(OTHER, TTL).issue(uuid.uuid4(), uuid.uuid4()))
    assert not (tmp_path / "jwt.key").exists()  # the environment's secret is used
