"""The keyring: creates, wraps and caches the data keys of each owner."""

from __future__ import annotations

import uuid

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from domain.core.crypto import SYSTEM_OWNER, FieldCipher, KeyEncryptionKey, new_data_key
from domain.core.models import DataKey
from domain.core.settings import Settings

FIELDS = "fields"
INDEX = "index"
AUDIT = "audit"  # the Ed25519 seed that signs audit checkpoints
SYSTEM_PURPOSES = (FIELDS, INDEX, AUDIT)


class Keyring:
    """Per process: the KEK plus unwrapped data keys, cached by owner."""

    def __init__(self, kek: KeyEncryptionKey) -> None:
        self.kek = kek
        self._ciphers: dict[uuid.UUID, FieldCipher] = {}
        self._index_key: bytes | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        if settings.kek is not None:
            return cls(KeyEncryptionKey.from_base64(settings.kek.get_secret_value()))
        path = settings.kek_file or settings.ensure_data_dir() / "kek.key"
        return cls(KeyEncryptionKey.load_or_create(path))

    async def create_owner_key(self, session: AsyncSession, owner: uuid.UUID) -> FieldCipher:
        """A fresh field data key for a new workspace (or the system owner)."""
        await self._store_key(session, owner, FIELDS, new_data_key())
        return await self.cipher(session, owner)

    async def cipher(self, session: AsyncSession, owner: uuid.UUID) -> FieldCipher:
        cached = self._ciphers.get(owner)
        if cached is not None:
            return cached
        rows = await self._keys(session, owner, FIELDS)
        if not rows:
            raise LookupError(f"No data key for owner {owner}")
        keys = {row.key_id: AESGCM(self.kek.unwrap(row.wrapped, owner, row.key_id)) for row in rows}
        active = max(row.key_id for row in rows if row.retired_at is None)
        cipher = FieldCipher(owner=owner, active_key_id=active, keys=keys)
        self._ciphers[owner] = cipher
        return cipher

    async def index_key(self, session: AsyncSession) -> bytes:
        """The HMAC key of blind indexes (email lookups); created once, wrapped like a DEK."""
        if self._index_key is not None:
            return self._index_key
        rows = await self._keys(session, SYSTEM_OWNER, INDEX)
        if not rows:
            raise LookupError("No blind-index key: run `wealthwise migrate` first")
        row = rows[0]
        self._index_key = self.kek.unwrap(row.wrapped, SYSTEM_OWNER, row.key_id)
        return self._index_key

    async def ensure_system_keys(self, session: AsyncSession) -> None:
        """Create the system owner's keys once; run in a transaction of its own."""
        for purpose in SYSTEM_PURPOSES:
            if not await self._keys(session, SYSTEM_OWNER, purpose):
                await self._store_key(session, SYSTEM_OWNER, purpose, new_data_key())

    async def system_secrets(self, session: AsyncSession, purpose: str) -> dict[int, bytes]:
        """Every key of one system purpose (e.g. AUDIT), unwrapped, by key id."""
        rows = await self._keys(session, SYSTEM_OWNER, purpose)
        return {row.key_id: self.kek.unwrap(row.wrapped, SYSTEM_OWNER, row.key_id) for row in rows}

    def forget(self) -> None:
        """Drop cached keys (after a rollback that may have discarded new keys)."""
        self._ciphers.clear()
        self._index_key = None

    async def _keys(self, session: AsyncSession, owner: uuid.UUID, purpose: str) -> list[DataKey]:
        result = await session.execute(
            select(DataKey)
            .where(DataKey.owner_id == owner, DataKey.purpose == purpose)
            .order_by(col(DataKey.key_id))
        )
        return list(result.scalars())

    async def _store_key(
        self, session: AsyncSession, owner: uuid.UUID, purpose: str, key: bytes
    ) -> None:
        existing = await self._keys(session, owner, purpose)
        key_id = max((row.key_id for row in existing), default=0) + 1
        session.add(
            DataKey(
                owner_id=owner,
                purpose=purpose,
                key_id=key_id,
                kek_id=self.kek.key_id,
                wrapped=self.kek.wrap(key, owner, key_id),
            )
        )
        await session.flush()
