"""Access tokens: short-lived JWTs (joserfc), HS256 with a key id so keys can rotate."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from dataclasses import dataclass

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey

from domain.core.errors import Unauthenticated
from domain.core.settings import Settings

ALGORITHM = "HS256"


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    expires_at: int


class TokenSigner:
    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        self.kid = hashlib.sha256(secret).hexdigest()[:16]
        key = OctKey.import_key(secret, {"kid": self.kid, "alg": ALGORITHM})
        self._signing_key = key
        self._keys = KeySet([key])
        self.ttl_seconds = ttl_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenSigner:
        ttl = settings.access_token_minutes * 60
        if settings.jwt_secret is not None:
            return cls(settings.jwt_secret.get_secret_value().encode(), ttl)
        path = settings.ensure_data_dir() / "jwt.key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(os.urandom(32).hex())
        return cls(path.read_text().strip().encode(), ttl)

    def issue(self, user_id: uuid.UUID, session_id: uuid.UUID) -> str:
        now = int(time.time())
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
            jwt.JWTClaimsRegistry(
                exp={"essential": True}, sub={"essential": True}, sid={"essential": True}
            ).validate(decoded.claims)
            return AccessClaims(
                user_id=uuid.UUID(decoded.claims["sub"]),
                session_id=uuid.UUID(decoded.claims["sid"]),
                expires_at=int(decoded.claims["exp"]),
            )
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise Unauthenticated("The access token is invalid or expired") from exc
