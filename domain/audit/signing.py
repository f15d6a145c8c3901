"""The Ed25519 key that seals audit chains: its seed is a system data key (purpose AUDIT),
wrapped by the KEK like every other data key, so a KEK rotation re-wraps it too."""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.ext.asyncio import AsyncSession

from domain.core.keys import AUDIT, Keyring


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """A short fingerprint of the public key: checkpoints name the key that signed them."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


class AuditSigner:
    """Signs with the newest audit key; verifies with any of them (by key id)."""

    def __init__(self, seeds: dict[int, bytes]) -> None:
        if not seeds:
            raise LookupError("No audit signing key: run `wealthwise migrate` first")
        keys = [Ed25519PrivateKey.from_private_bytes(seeds[n]) for n in sorted(seeds)]
        self._active = keys[-1]
        self.key_id = key_id_of(self._active.public_key())
        self.public_keys = {key_id_of(k.public_key()): k.public_key() for k in keys}

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._active.public_key()

    def sign(self, message: bytes) -> bytes:
        return self._active.sign(message)

    def verifies(self, key_id: str, message: bytes, signature: bytes) -> bool:
        public_key = self.public_keys.get(key_id)
        if public_key is None:
            return False
        try:
            public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


async def load_signer(session: AsyncSession, keyring: Keyring) -> AuditSigner:
    return AuditSigner(await keyring.system_secrets(session, AUDIT))
