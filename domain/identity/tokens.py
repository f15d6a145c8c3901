"""Access tokens: short-lived JWTs (joserfc), HS256, with a key id so keys can rotate.

One active secret signs; retired secrets still verify the tokens they signed until their
retirement time plus the access-token lifetime (the longest such a token can live), after
which a token naming that key id is refused. Where the secrets live: `WEALTHWISE_JWT_SECRET`
and `WEALTHWISE_JWT_PREVIOUS_SECRETS` (JSON) in production, or the embedded key files
`jwt.key` and `jwt-retired.json` in the data dir, which `rotate_key_file` rotates.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import Key, KeySet, OctKey

from domain.core.errors import Unauthenticated
from domain.core.settings import RetiredJwtSecret, Settings

ALGORITHM = "HS256"
KEY_FILE = "jwt.key"
RETIRED_FILE = "jwt-retired.json"


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    expires_at: int


@dataclass(frozen=True)
class RetiredSecret:
    secret: bytes
    retired_at: datetime


def key_id(secret: bytes) -> str:
    """A public fingerprint of a secret (64 bits of its SHA-256), used as the JWT `kid`."""
    return hashlib.sha256(secret).hexdigest()[:16]


def _oct_key(secret: bytes) -> OctKey:
    return OctKey.import_key(secret, {"kid": key_id(secret), "alg": ALGORITHM})


class TokenSigner:
    def __init__(
        self,
        secret: bytes,
        ttl_seconds: int,
        retired: Iterable[RetiredSecret] = (),
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kid = key_id(secret)
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._signing_key = _oct_key(secret)
        # kid -> the last moment (epoch seconds) its tokens verify; None: the active key.
        self._verifies_until: dict[str, float | None] = {self.kid: None}
        keys: list[Key] = [self._signing_key]
        for old in retired:
            kid = key_id(old.secret)
            if kid in self._verifies_until:
                continue
            self._verifies_until[kid] = old.retired_at.timestamp() + ttl_seconds
            keys.append(_oct_key(old.secret))
        self._keys = KeySet(keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenSigner:
        ttl = settings.access_token_minutes * 60
        retired = [
            RetiredSecret(old.secret.get_secret_value().encode(), old.retired_at)
            for old in settings.jwt_previous_secrets
        ]
        if settings.jwt_secret is not None:
            return cls(settings.jwt_secret.get_secret_value().encode(), ttl, retired)
        data_dir = settings.ensure_data_dir()
        active = _read_or_create_key_file(data_dir / KEY_FILE)
        return cls(active, ttl, [*retired, *_read_retired_file(data_dir / RETIRED_FILE)])

    @property
    def key_ids(self) -> list[str]:
        """Every key id that verifies now (the active one first)."""
        now = self._clock()
        return [kid for kid, until in self._verifies_until.items() if until is None or now <= until]

    def issue(self, user_id: uuid.UUID, session_id: uuid.UUID) -> str:
        now = int(self._clock())
        claims = {
            "sub": str(user_id),
            "sid": str(session_id),
            "iat": now,
            "exp": now + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode({"alg": ALGORITHM, "kid": self.kid}, claims, self._signing_key)

    def verify(self, token: str) -> AccessClaims:
        try:
            decoded = jwt.decode(token, self._keys, algorithms=[ALGORITHM])
            kid = decoded.header.get("kid")
            if kid not in self._verifies_until:
                raise ValueError("unknown key id")
            until = self._verifies_until[kid]
            if until is not None and self._clock() > until:
                raise ValueError("the key was retired")
            jwt.JWTClaimsRegistry(
                now=lambda: int(self._clock()),
                exp={"essential": True},
                sub={"essential": True},
                sid={"essential": True},
            ).validate(decoded.claims)
            return AccessClaims(
                user_id=uuid.UUID(decoded.claims["sub"]),
                session_id=uuid.UUID(decoded.claims["sid"]),
                expires_at=int(decoded.claims["exp"]),
            )
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise Unauthenticated("The access token is invalid or expired") from exc


def new_secret() -> str:
    return secrets.token_hex(32)


def _write_private(path: Path, text: str) -> None:
    """Write a 0600 file atomically (a reader sees the old or the new content, never half)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def _read_or_create_key_file(path: Path) -> bytes:
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(new_secret())
    return path.read_text().strip().encode()


def _read_retired_file(path: Path) -> list[RetiredSecret]:
    if not path.exists():
        return []
    entries = [RetiredJwtSecret.model_validate(item) for item in json.loads(path.read_text())]
    return [
        RetiredSecret(entry.secret.get_secret_value().encode(), entry.retired_at)
        for entry in entries
    ]


def retired_json(entries: Iterable[RetiredSecret]) -> str:
    """The JSON of `WEALTHWISE_JWT_PREVIOUS_SECRETS` (and of the embedded retired file)."""
    return json.dumps(
        [
            {"secret": entry.secret.decode(), "retired_at": entry.retired_at.isoformat()}
            for entry in entries
        ]
    )


def rotated(
    current: bytes, retired: Iterable[RetiredSecret], ttl_seconds: int, now: datetime
) -> tuple[str, list[RetiredSecret]]:
    """A new active secret, and the retired list with `current` added and the secrets
    whose tokens have all expired dropped."""
    cutoff = now - timedelta(seconds=ttl_seconds)
    kept = [entry for entry in retired if entry.retired_at > cutoff and entry.secret != current]
    return new_secret(), [*kept, RetiredSecret(current, now)]


def rotate_key_file(settings: Settings, now: datetime | None = None) -> str:
    """Rotate the embedded key files; returns the new key id. Restart the API afterwards."""
    data_dir = settings.ensure_data_dir()
    key_path, retired_path = data_dir / KEY_FILE, data_dir / RETIRED_FILE
    current = _read_or_create_key_file(key_path)
    secret, retired = rotated(
        current,
        _read_retired_file(retired_path),
        settings.access_token_minutes * 60,
        now or datetime.now(UTC),
    )
    # Retired list first: a crash in between leaves the old key both active and retired.
    _write_private(retired_path, retired_json(retired))
    _write_private(key_path, secret)
    return key_id(secret.encode())
