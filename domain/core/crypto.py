"""Envelope encryption: AES-256-GCM field ciphers under per-workspace data keys.

A data key (DEK) per owner (a workspace, or the system owner for user PII) is wrapped by
the key-encryption key (KEK). A sealed field is `version | key id | nonce | ciphertext+tag`,
with associated data binding it to table, column, row id and owner, so a ciphertext
cannot be moved to another row, column or workspace.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT_VERSION = 1
_HEADER = struct.Struct(">BI")  # version, key id
_NONCE_BYTES = 12
SYSTEM_OWNER = uuid.UUID(int=0)


class DecryptionError(Exception):
    """A ciphertext that does not open under its key and binding: tampered or moved."""


def _aad(table: str, column: str, row_id: uuid.UUID, owner: uuid.UUID) -> bytes:
    return f"{table}|{column}|{row_id.hex}|{owner.hex}".encode()


@dataclass(frozen=True)
class KeyEncryptionKey:
    key_id: str
    secret: bytes

    @classmethod
    def from_base64(cls, text: str) -> KeyEncryptionKey:
        secret = base64.b64decode(text, validate=True)
        if len(secret) != 32:
            raise ValueError("The key-encryption key must be 32 bytes (base64)")
        return cls(key_id=hashlib.sha256(secret).hexdigest()[:16], secret=secret)

    @classmethod
    def generate(cls) -> KeyEncryptionKey:
        return cls.from_base64(base64.b64encode(os.urandom(32)).decode())

    def to_base64(self) -> str:
        return base64.b64encode(self.secret).decode()

    def wrap(self, dek: bytes, owner: uuid.UUID, key_id: int) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        aad = f"dek|{owner.hex}|{key_id}".encode()
        return nonce + AESGCM(self.secret).encrypt(nonce, dek, aad)

    def unwrap(self, wrapped: bytes, owner: uuid.UUID, key_id: int) -> bytes:
        aad = f"dek|{owner.hex}|{key_id}".encode()
        try:
            return AESGCM(self.secret).decrypt(wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:], aad)
        except Exception as exc:
            raise DecryptionError("Data key does not unwrap under this KEK") from exc


@dataclass
class FieldCipher:
    """Seals and opens the fields of one owner's rows; keeps every key id it can open."""

    owner: uuid.UUID
    active_key_id: int
    keys: dict[int, AESGCM] = field(default_factory=dict)

    def seal(self, plaintext: bytes, table: str, column: str, row_id: uuid.UUID) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        aead = self.keys[self.active_key_id]
        sealed = aead.encrypt(nonce, plaintext, _aad(table, column, row_id, self.owner))
        return _HEADER.pack(FORMAT_VERSION, self.active_key_id) + nonce + sealed

    def open(self, blob: bytes, table: str, column: str, row_id: uuid.UUID) -> bytes:
        version, key_id = _HEADER.unpack_from(blob)
        if version != FORMAT_VERSION or key_id not in self.keys:
            raise DecryptionError(f"Unknown ciphertext version {version} or key {key_id}")
        start = _HEADER.size
        nonce, sealed = blob[start : start + _NONCE_BYTES], blob[start + _NONCE_BYTES :]
        try:
            return self.keys[key_id].decrypt(nonce, sealed, _aad(table, column, row_id, self.owner))
        except Exception as exc:
            raise DecryptionError(f"{table}.{column} of {row_id} does not open") from exc

    def seal_text(self, text: str, table: str, column: str, row_id: uuid.UUID) -> bytes:
        return self.seal(text.encode(), table, column, row_id)

    def open_text(self, blob: bytes, table: str, column: str, row_id: uuid.UUID) -> str:
        return self.open(blob, table, column, row_id).decode()

    def seal_optional(
        self, text: str | None, table: str, column: str, row_id: uuid.UUID
    ) -> bytes | None:
        return None if text is None else self.seal_text(text, table, column, row_id)

    def open_optional(
        self, blob: bytes | None, table: str, column: str, row_id: uuid.UUID
    ) -> str | None:
        return None if blob is None else self.open_text(blob, table, column, row_id)

    def seal_int(self, value: int, table: str, column: str, row_id: uuid.UUID) -> bytes:
        return self.seal(value.to_bytes(16, "big", signed=True), table, column, row_id)

    def open_int(self, blob: bytes, table: str, column: str, row_id: uuid.UUID) -> int:
        return int.from_bytes(self.open(blob, table, column, row_id), "big", signed=True)


def load_key_file(path: Path) -> list[KeyEncryptionKey]:
    """The embedded default: KEKs in a key file of the data dir (mode 0600), one per line,
    the active one first, then earlier ones still accepted during a rotation.
    A missing file is created with one fresh key."""
    if not path.exists():
        _write_private(path, [KeyEncryptionKey.generate()])
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"The key file {path} is empty")
    return [KeyEncryptionKey.from_base64(line) for line in lines]


def write_key_file(path: Path, keys: list[KeyEncryptionKey]) -> None:
    """Replace the key file atomically (a crash leaves the old file or the new one)."""
    scratch = path.with_name(path.name + ".new")
    scratch.unlink(missing_ok=True)
    _write_private(scratch, keys)
    os.replace(scratch, path)


def _write_private(path: Path, keys: list[KeyEncryptionKey]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(key.to_base64() + "\n" for key in keys))
        handle.flush()
        os.fsync(handle.fileno())


def ciphertext_key_id(blob: bytes) -> int:
    """The data key id a sealed field names (its header), without opening it."""
    version, key_id = _HEADER.unpack_from(blob)
    if version != FORMAT_VERSION:
        raise DecryptionError(f"Unknown ciphertext version {version}")
    return int(key_id)


def ciphertext_header(key_id: int) -> bytes:
    """The first bytes of every field sealed under `key_id`: lets SQL find them."""
    return _HEADER.pack(FORMAT_VERSION, key_id)


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def blind_index(key: bytes, value: str) -> bytes:
    """HMAC-SHA256 of a normalised value, for equality lookups on encrypted columns."""
    return hmac.new(key, value.strip().casefold().encode(), hashlib.sha256).digest()
