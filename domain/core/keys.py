"""The keyring: creates, wraps and caches the data keys of each owner.

A process may hold several KEKs (the active one first): data keys are unwrapped by the
KEK their row names (`kek_id`, or the previous wrapping during a KEK rotation).
Cached field keys are re-read every `refresh_seconds`, so a process picks up a rotated
data key promptly; a new key is used for writes only `activation_delay` after it was
created, by when every process has loaded it and can open what it seals.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from domain.core.crypto import (
    SYSTEM_OWNER,
    DecryptionError,
    FieldCipher,
    KeyEncryptionKey,
    load_key_file,
    new_data_key,
)
from domain.core.db import bind_scope
from domain.core.models import DataKey, as_utc, utcnow
from domain.core.settings import Settings

FIELDS = "fields"
INDEX = "index"
AUDIT = "audit"  # the Ed25519 seed that signs audit checkpoints
SYSTEM_PURPOSES = (FIELDS, INDEX, AUDIT)


class Keyring:
    """Per process: the KEKs plus unwrapped data keys, cached by owner."""

    def __init__(
        self,
        kek: KeyEncryptionKey,
        previous: Sequence[KeyEncryptionKey] = (),
        *,
        refresh_seconds: float = 5.0,
    ) -> None:
        self.kek = kek
        self.previous = [key for key in previous if key.key_id != kek.key_id]
        self.keks = {key.key_id: key for key in (kek, *self.previous)}
        self.refresh_seconds = refresh_seconds
        self._ciphers: dict[uuid.UUID, FieldCipher] = {}
        self._loaded_at: dict[uuid.UUID, float] = {}
        self._index_key: bytes | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        previous = [
            KeyEncryptionKey.from_base64(text.strip())
            for text in (
                settings.kek_previous.get_secret_value() if settings.kek_previous else ""
            ).split(",")
            if text.strip()
        ]
        if settings.kek is not None:
            keks = [KeyEncryptionKey.from_base64(settings.kek.get_secret_value())]
        else:
            keks = load_key_file(kek_file(settings))
        return cls(keks[0], [*keks[1:], *previous], refresh_seconds=settings.key_refresh_seconds)

    @property
    def activation_delay(self) -> timedelta:
        """How long after its creation a rotated data key starts sealing new writes."""
        return timedelta(seconds=2 * self.refresh_seconds)

    async def create_owner_key(self, session: AsyncSession, owner: uuid.UUID) -> FieldCipher:
        """A fresh field data key for a new workspace (or the system owner)."""
        await self.add_key(session, owner)
        return await self.cipher(session, owner)

    async def add_key(
        self, session: AsyncSession, owner: uuid.UUID, purpose: str = FIELDS
    ) -> DataKey:
        """A new data key for `owner`, with the next key id; the newest one wins once active."""
        existing = await self.data_keys(session, owner, purpose)
        key_id = max((row.key_id for row in existing), default=0) + 1
        row = DataKey(owner_id=owner, purpose=purpose, key_id=key_id, kek_id="", wrapped=b"")
        self.wrap(row, new_data_key())
        session.add(row)
        await session.flush()
        return row

    async def cipher(self, session: AsyncSession, owner: uuid.UUID) -> FieldCipher:
        cached = self._ciphers.get(owner)
        now = time.monotonic()
        if cached is not None and now - self._loaded_at[owner] < self.refresh_seconds:
            return cached
        rows = await self.data_keys(session, owner, FIELDS)
        if not rows:
            raise LookupError(f"No data key for owner {owner}")
        active = self.active_key_id(rows)
        if cached is None:
            cached = FieldCipher(owner=owner, active_key_id=active)
        # Updated in place: requests holding this cipher see new keys too.
        for row in rows:
            if row.key_id not in cached.keys:
                cached.keys[row.key_id] = AESGCM(self.unwrap(row))
        cached.active_key_id = active
        self._ciphers[owner] = cached
        self._loaded_at[owner] = now
        return cached

    def active_key_id(self, rows: Sequence[DataKey]) -> int:
        """The newest live key that every process has had time to load; else the oldest
        live one (a new owner's first key is active at once)."""
        live = [row for row in rows if row.retired_at is None]
        if not live:
            raise LookupError("Every data key of this owner is retired")
        ready_before = utcnow() - self.activation_delay
        ready = [row.key_id for row in live if as_utc(row.created_at) <= ready_before]
        return max(ready) if ready else min(row.key_id for row in live)

    async def index_key(self, session: AsyncSession) -> bytes:
        """The HMAC key of blind indexes (email lookups); created once, wrapped like a DEK."""
        if self._index_key is not None:
            return self._index_key
        rows = await self.data_keys(session, SYSTEM_OWNER, INDEX)
        if not rows:
            raise LookupError("No blind-index key: run `wealthwise migrate` first")
        self._index_key = self.unwrap(rows[0])
        return self._index_key

    async def ensure_system_keys(self, session: AsyncSession) -> None:
        """Create the system owner's keys once; run in a transaction of its own."""
        await bind_scope(session, workspace_id=SYSTEM_OWNER)
        for purpose in SYSTEM_PURPOSES:
            if not await self.data_keys(session, SYSTEM_OWNER, purpose):
                await self.add_key(session, SYSTEM_OWNER, purpose)

    async def system_secrets(self, session: AsyncSession, purpose: str) -> dict[int, bytes]:
        """Every key of one system purpose (e.g. AUDIT), unwrapped, by key id."""
        rows = await self.data_keys(session, SYSTEM_OWNER, purpose)
        return {row.key_id: self.kek.unwrap(row.wrapped, SYSTEM_OWNER, row.key_id) for row in rows}

    def forget(self) -> None:
        """Drop cached keys (after a rollback that may have discarded new keys)."""
        self._ciphers.clear()
        self._loaded_at.clear()
        self._index_key = None

    def wrap(self, row: DataKey, dek: bytes) -> None:
        """Wrap `dek` by the active KEK, and by the first previous one while a KEK rotation
        is under way (processes that still run with it keep working)."""
        row.kek_id = self.kek.key_id
        row.wrapped = self.kek.wrap(dek, row.owner_id, row.key_id)
        previous = self.previous[0] if self.previous else None
        row.previous_kek_id = previous.key_id if previous else None
        row.previous_wrapped = previous.wrap(dek, row.owner_id, row.key_id) if previous else None

    def unwrap(self, row: DataKey) -> bytes:
        for kek_id, wrapped in (
            (row.kek_id, row.wrapped),
            (row.previous_kek_id, row.previous_wrapped),
        ):
            kek = self.keks.get(kek_id) if kek_id else None
            if kek is not None and wrapped is not None:
                return kek.unwrap(wrapped, row.owner_id, row.key_id)
        raise DecryptionError(
            f"Data key {row.key_id} of {row.owner_id} is wrapped by KEK {row.kek_id}, "
            "which this process does not hold"
        )

    def needs_rewrap(self, row: DataKey) -> bool:
        """Not wrapped by the active KEK, or lacking the wrapping by the previous one."""
        if row.kek_id != self.kek.key_id:
            return True
        return bool(self.previous) and row.previous_kek_id != self.previous[0].key_id

    async def data_keys(
        self, session: AsyncSession, owner: uuid.UUID, purpose: str = FIELDS
    ) -> list[DataKey]:
        result = await session.execute(
            select(DataKey)
            .where(DataKey.owner_id == owner, DataKey.purpose == purpose)
            .order_by(col(DataKey.key_id))
        )
        return list(result.scalars())


def kek_file(settings: Settings) -> Path:
    return settings.kek_file or settings.ensure_data_dir() / "kek.key"
