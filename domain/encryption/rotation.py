"""Key rotation while the API keeps serving: KEK re-wrap, data-key rotation, status, purge.

KEK rotation re-wraps every data key (field keys and the blind-index key) under the
active KEK in one transaction, keeping a wrapping by the previous KEK so processes that
still run with it keep working until `purge_retired`.

Data-key rotation gives each owner (workspace, and the system owner of user PII) a new
key, waits until every API process has loaded it and seals new writes with it (three
key-refresh periods), then re-encrypts the owner's rows in short batches: read a batch,
re-seal it outside any transaction, write it back with compare-and-swap updates
(`WHERE id = :id AND col = :old`), so a concurrent API write is never overwritten. Rows
skipped by a CAS miss (or locked by an API transaction on PostgreSQL) are picked up by
the next sweep. A final check in a write transaction finds no ciphertext naming an old
key before the old keys are marked retired (kept for decryption). Every step can be
interrupted: running it again finishes an owner whose old keys are still live.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col
from sqlmodel import select as select_model

from domain.core.crypto import (
    SYSTEM_OWNER,
    FieldCipher,
    KeyEncryptionKey,
    ciphertext_key_id,
    load_key_file,
    write_key_file,
)
from domain.core.db import bind_scope, unit_of_work
from domain.core.keys import FIELDS, Keyring, kek_file
from domain.core.models import DataKey, as_utc, utcnow
from domain.core.settings import Settings
from domain.encryption.registry import (
    APPEND_ONLY,
    ENCRYPTED,
    EncryptedTable,
    header_of,
    tables_of,
)
from domain.identity.models import Workspace

Report = Callable[[str], None]
MAX_SWEEPS = 20
SWEEP_PAUSE_SECONDS = 0.1


def _quiet(_line: str) -> None:
    return None


class RotationError(Exception):
    """A rotation or purge that cannot go on; nothing half-done is left unrecoverable."""


def owner_label(owner: uuid.UUID) -> str:
    return "system (user PII)" if owner == SYSTEM_OWNER else f"workspace {owner}"


async def _scoped(session: AsyncSession, owner: uuid.UUID | None) -> AsyncSession:
    """Row-level-security scope of a rotation session: one workspace, else maintenance."""
    if owner is None or owner == SYSTEM_OWNER:
        await bind_scope(session, maintenance=True)
    else:
        await bind_scope(session, workspace_id=owner)
    return session


# --- KEK rotation ---------------------------------------------------------------------


async def rotate_kek(engine: AsyncEngine, settings: Settings, report: Report = _quiet) -> Keyring:
    """Re-wrap every data key under the active KEK; returns the keyring that did it.

    With the embedded key file, a new KEK is generated first (the current one stays in the
    file as the previous KEK) unless an interrupted rotation is still to be finished. With
    WEALTHWISE_KEK, the new KEK is the configured one and the old one must be listed in
    WEALTHWISE_KEK_PREVIOUS.
    """
    keyring = Keyring.from_settings(settings)
    if not await _keys_to_rewrap(engine, keyring):
        if settings.kek is not None:
            report(
                f"every data key is already wrapped by the active KEK {keyring.kek.key_id}; "
                "to rotate it, set WEALTHWISE_KEK to a new key and WEALTHWISE_KEK_PREVIOUS "
                "to the current one, then run this again"
            )
            return keyring
        path = kek_file(settings)
        current = load_key_file(path)[0]
        fresh = KeyEncryptionKey.generate()
        write_key_file(path, [fresh, current])
        report(f"wrote a new KEK {fresh.key_id} to {path} (previous: {current.key_id})")
        keyring = Keyring.from_settings(settings)
    count = await rewrap_data_keys(engine, keyring)
    report(f"re-wrapped {count} data keys under KEK {keyring.kek.key_id}")
    return keyring


async def _keys_to_rewrap(engine: AsyncEngine, keyring: Keyring) -> int:
    async with unit_of_work(engine, write=False) as session:
        await _scoped(session, None)
        rows = (await session.execute(select(DataKey))).scalars().all()
        return sum(1 for row in rows if keyring.needs_rewrap(row))


async def rewrap_data_keys(engine: AsyncEngine, keyring: Keyring) -> int:
    """One transaction: every data key not (yet) wrapped by the active KEK is re-wrapped."""
    async with unit_of_work(engine) as session:
        await _scoped(session, None)
        rows = (await session.execute(select(DataKey))).scalars().all()
        changed = [row for row in rows if keyring.needs_rewrap(row)]
        for row in changed:
            keyring.wrap(row, keyring.unwrap(row))
        await session.flush()
    return len(changed)


# --- data-key rotation ----------------------------------------------------------------


@dataclass
class OwnerRotation:
    owner: uuid.UUID
    key_id: int
    reencrypted: int = 0
    sweeps: int = 0
    retired: list[int] = field(default_factory=list)


async def rotate_data_keys(
    engine: AsyncEngine,
    keyring: Keyring,
    *,
    workspace_id: uuid.UUID | None = None,
    batch_size: int = 500,
    report: Report = _quiet,
) -> list[OwnerRotation]:
    """Rotate the data keys of every owner (or one workspace), or finish an interrupted
    rotation: owners whose old key is still live are finished without a new key."""
    owners = await _owners(engine, workspace_id)
    keys = await _field_keys(engine, owners)
    owners = [owner for owner in owners if keys[owner]]  # no key yet: nothing sealed
    if not owners:
        report("no data keys to rotate")
        return []
    unfinished = [owner for owner in owners if len(_live(keys[owner])) > 1]
    if unfinished:
        report(f"finishing an interrupted rotation of {len(unfinished)} key owner(s)")
        owners = unfinished
    else:
        await add_keys(engine, keyring, owners)
        keys = await _field_keys(engine, owners)
        report(f"created new data keys for {len(owners)} key owner(s)")
    targets = {owner: max(row.key_id for row in _live(keys[owner])) for owner in owners}
    newest = max(as_utc(row.created_at) for owner in owners for row in _live(keys[owner]))
    await _wait_until_loaded(keyring, newest, report)
    results = []
    for owner in owners:
        results.append(
            await rotate_owner(engine, keyring, owner, targets[owner], batch_size, report)
        )
    return results


async def _owners(engine: AsyncEngine, workspace_id: uuid.UUID | None) -> list[uuid.UUID]:
    async with unit_of_work(engine, write=False) as session:
        await _scoped(session, workspace_id)
        statement = select_model(col(Workspace.id)).order_by(col(Workspace.id))
        if workspace_id is not None:
            statement = statement.where(col(Workspace.id) == workspace_id)
        workspaces = list((await session.execute(statement)).scalars())
    if workspace_id is not None and not workspaces:
        raise RotationError(f"No workspace {workspace_id}")
    return workspaces if workspace_id is not None else [SYSTEM_OWNER, *workspaces]


async def _field_keys(
    engine: AsyncEngine, owners: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[DataKey]]:
    found: dict[uuid.UUID, list[DataKey]] = {owner: [] for owner in owners}
    async with unit_of_work(engine, write=False) as session:
        await _scoped(session, owners[0] if len(owners) == 1 else None)
        rows = await session.execute(
            select_model(DataKey)
            .where(col(DataKey.purpose) == FIELDS)
            .order_by(col(DataKey.key_id))
        )
        for row in rows.scalars():
            if row.owner_id in found:
                found[row.owner_id].append(row)
    return found


def _live(rows: Sequence[DataKey]) -> list[DataKey]:
    return [row for row in rows if row.retired_at is None]


async def add_keys(engine: AsyncEngine, keyring: Keyring, owners: Sequence[uuid.UUID]) -> None:
    """New keys for every owner in one transaction: an interruption leaves all or none."""
    async with unit_of_work(engine) as session:
        await _scoped(session, owners[0] if len(owners) == 1 else None)
        for owner in owners:
            await keyring.add_key(session, owner)


async def _wait_until_loaded(keyring: Keyring, created: datetime, report: Report) -> None:
    """Until every process has loaded the new keys and seals its writes with them."""
    ready = created + keyring.activation_delay + timedelta(seconds=keyring.refresh_seconds)
    wait = (ready - utcnow()).total_seconds()
    if wait > 0:
        report(f"waiting {wait:.1f}s for every API process to load the new keys")
        await asyncio.sleep(wait)


async def rotate_owner(
    engine: AsyncEngine,
    keyring: Keyring,
    owner: uuid.UUID,
    key_id: int,
    batch_size: int = 500,
    report: Report = _quiet,
) -> OwnerRotation:
    """Re-encrypt every sealed field of `owner` under `key_id`, then retire its old keys."""
    result = OwnerRotation(owner, key_id)
    cipher = await rotation_cipher(engine, keyring, owner, key_id)
    label = owner_label(owner)
    tables = list(tables_of(owner))
    while True:
        stale = await _count_stale(engine, owner, tables, key_id)
        if not any(stale.values()):
            retired = await _retire_if_done(engine, owner, tables, key_id)
            if retired is not None:
                result.retired = retired
                report(f"{label}: done, key {key_id} active, retired {retired or 'none'}")
                return result
            continue
        result.sweeps += 1
        if result.sweeps > MAX_SWEEPS:
            raise RotationError(
                f"{label}: rows under old keys keep coming back after {MAX_SWEEPS} sweeps "
                "(an API process with a stale keyring?); run the rotation again"
            )
        if result.sweeps > 1:
            # Rows left by a CAS miss or held by an API transaction: give it time to end.
            await asyncio.sleep(SWEEP_PAUSE_SECONDS * (result.sweeps - 1))
        for table in tables:
            if stale[table.name]:
                result.reencrypted += await _reencrypt_table(
                    engine, cipher, table, stale[table.name], batch_size, report
                )


async def rotation_cipher(
    engine: AsyncEngine, keyring: Keyring, owner: uuid.UUID, key_id: int
) -> FieldCipher:
    """All of the owner's keys, sealing with `key_id` (whatever the processes' cache says)."""
    async with unit_of_work(engine, write=False) as session:
        await _scoped(session, owner)
        rows = await keyring.data_keys(session, owner)
    keys = {row.key_id: AESGCM(keyring.unwrap(row)) for row in rows}
    return FieldCipher(owner=owner, active_key_id=key_id, keys=keys)


async def _count_stale(
    engine: AsyncEngine, owner: uuid.UUID, tables: Sequence[EncryptedTable], key_id: int
) -> dict[str, int]:
    async with unit_of_work(engine, write=False) as session:
        await _scoped(session, owner)
        return await _stale_counts(session, owner, tables, key_id)


async def _stale_counts(
    session: AsyncSession, owner: uuid.UUID, tables: Sequence[EncryptedTable], key_id: int
) -> dict[str, int]:
    counts = {}
    for table in tables:
        statement = (
            select(func.count())
            .select_from(table.table)
            .where(table.owner_filter(owner), table.sealed_under_other_key(key_id))
        )
        counts[table.name] = int((await session.execute(statement)).scalar_one())
    return counts


async def _reencrypt_table(
    engine: AsyncEngine,
    cipher: FieldCipher,
    table: EncryptedTable,
    total: int,
    batch_size: int,
    report: Report,
) -> int:
    """One sweep over the table in id order: batches of rows not under the active key."""
    done, last_id = 0, None
    while True:
        changes = await read_batch(engine, cipher, table, last_id, batch_size)
        if not changes:
            return done
        last_id = changes[-1][0]
        await write_batch(engine, cipher.owner, table, changes)
        done += len(changes)
        report(f"{owner_label(cipher.owner)}: {table.name} {done}/{total}")
        await asyncio.sleep(0)  # let the API's transactions in between batches


async def read_batch(
    engine: AsyncEngine,
    cipher: FieldCipher,
    table: EncryptedTable,
    after: uuid.UUID | None,
    limit: int,
) -> list[Change]:
    """The next rows (by id) with a field not under the cipher's active key, re-sealed
    under it (outside any transaction: the write that follows compares and swaps)."""
    owner, key_id = cipher.owner, cipher.active_key_id
    async with unit_of_work(engine, write=False) as session:
        await _scoped(session, owner)
        columns = [table.column(name) for name in table.fields]
        statement = (
            select(table.table.c.id, *columns)
            .where(table.owner_filter(owner), table.sealed_under_other_key(key_id))
            .order_by(table.table.c.id)
            .limit(limit)
        )
        if after is not None:
            statement = statement.where(table.table.c.id > after)
        rows = (await session.execute(statement)).all()
    return [_resealed(cipher, table, row) for row in rows]


Change = tuple[uuid.UUID, dict[str, tuple[bytes, bytes]]]  # row id, field -> (old, new)


def _resealed(cipher: FieldCipher, table: EncryptedTable, row: Sequence[object]) -> Change:
    row_id = row[0]
    assert isinstance(row_id, uuid.UUID)
    fields: dict[str, tuple[bytes, bytes]] = {}
    for name, value in zip(table.fields, row[1:], strict=True):
        if value is None:
            continue
        assert isinstance(value, bytes)
        if ciphertext_key_id(value) != cipher.active_key_id:
            plaintext = cipher.open(value, table.name, name, row_id)
            fields[name] = (value, cipher.seal(plaintext, table.name, name, row_id))
    return row_id, fields


async def write_batch(
    engine: AsyncEngine, owner: uuid.UUID, table: EncryptedTable, changes: Sequence[Change]
) -> None:
    """Compare-and-swap: a row whose value changed since it was read is left alone."""
    async with unit_of_work(engine) as session:
        await _scoped(session, owner)
        ids = [row_id for row_id, fields in changes if fields]
        if session.get_bind().dialect.name == "postgresql":
            # Never wait on a row an API transaction holds (no lock cycles): the next
            # sweep picks up what was skipped.
            locked = await session.execute(
                select(table.table.c.id)
                .where(table.table.c.id.in_(ids))
                .with_for_update(skip_locked=True)
            )
            writable = set(locked.scalars())
        else:
            writable = set(ids)
        groups: dict[tuple[str, ...], list[dict[str, object]]] = defaultdict(list)
        for row_id, fields in changes:
            if row_id in writable and fields:
                params: dict[str, object] = {"row_id": row_id}
                for name, (old, new) in fields.items():
                    params[f"old_{name}"], params[f"new_{name}"] = old, new
                groups[tuple(sorted(fields))].append(params)
        for names, params_list in groups.items():
            statement = (
                update(table.table)
                .where(
                    table.table.c.id == bindparam("row_id"),
                    *(table.column(name) == bindparam(f"old_{name}") for name in names),
                )
                .values({f"{name}_enc": bindparam(f"new_{name}") for name in names})
            )
            await session.execute(statement, params_list)


async def _retire_if_done(
    engine: AsyncEngine, owner: uuid.UUID, tables: Sequence[EncryptedTable], key_id: int
) -> list[int] | None:
    """The final pass, in a write transaction: no ciphertext names an old key, so the old
    keys are retired (kept for decryption). None if a concurrent write brought one back."""
    async with unit_of_work(engine) as session:
        await _scoped(session, owner)
        if any((await _stale_counts(session, owner, tables, key_id)).values()):
            return None
        rows = await session.execute(
            select_model(DataKey).where(
                col(DataKey.owner_id) == owner,
                col(DataKey.purpose) == FIELDS,
                col(DataKey.key_id) != key_id,
                col(DataKey.retired_at).is_(None),
            )
        )
        retired = []
        for row in rows.scalars():
            row.retired_at = utcnow()
            retired.append(row.key_id)
        await session.flush()
    return sorted(retired)


# --- status and purge -------------------------------------------------------------------


@dataclass(frozen=True)
class KeyState:
    owner: uuid.UUID
    purpose: str
    key_id: int
    state: str  # active, pending (not yet sealing), old (rotation unfinished), retired
    kek_id: str
    previous_kek_id: str | None
    ciphertexts: int


async def key_status(engine: AsyncEngine, keyring: Keyring) -> list[KeyState]:
    """Every data key with its state, its KEK and how many ciphertexts name it."""
    async with unit_of_work(engine, write=False) as session:
        await _scoped(session, None)
        rows = list(
            (
                await session.execute(
                    select(DataKey).order_by(
                        col(DataKey.owner_id), col(DataKey.purpose), col(DataKey.key_id)
                    )
                )
            ).scalars()
        )
        counts = await ciphertexts_per_key(session)
    by_owner: dict[uuid.UUID, list[DataKey]] = defaultdict(list)
    for row in rows:
        if row.purpose == FIELDS:
            by_owner[row.owner_id].append(row)
    states = []
    for row in rows:
        states.append(
            KeyState(
                owner=row.owner_id,
                purpose=row.purpose,
                key_id=row.key_id,
                state=_state(keyring, row, by_owner[row.owner_id]),
                kek_id=row.kek_id,
                previous_kek_id=row.previous_kek_id,
                ciphertexts=counts.get((row.owner_id, row.key_id), 0)
                if row.purpose == FIELDS
                else 0,
            )
        )
    return states


def _state(keyring: Keyring, row: DataKey, owner_keys: Sequence[DataKey]) -> str:
    if row.retired_at is not None:
        return "retired"
    if row.purpose != FIELDS:
        return "active"
    active = keyring.active_key_id(owner_keys)
    if row.key_id == active:
        return "active"
    return "pending" if row.key_id > active else "old"


async def ciphertexts_per_key(
    session: AsyncSession, tables: tuple[EncryptedTable, ...] = ENCRYPTED
) -> dict[tuple[uuid.UUID, int], int]:
    """(owner, key id) -> number of sealed values naming that key, across the registry."""
    counts: dict[tuple[uuid.UUID, int], int] = defaultdict(int)
    for table in tables:
        owner = table.owner_expression()
        for name in table.fields:
            header = header_of(table.column(name))
            statement = (
                select(owner, header, func.count())
                .where(table.column(name).is_not(None))
                .group_by(owner, header)
            )
            for owner_id, prefix, count in (await session.execute(statement)).all():
                counts[(uuid.UUID(str(owner_id)), ciphertext_key_id(bytes(prefix)))] += count
    return dict(counts)


@dataclass(frozen=True)
class Purged:
    data_keys: int
    previous_wrappings: int
    kept_for_audit: int = 0


async def purge_retired(engine: AsyncEngine, keyring: Keyring) -> Purged:
    """Destroy retired data keys and the previous KEK's wrappings. Refuses (changing
    nothing) while a ciphertext names a retired key or a data key is not yet wrapped by
    the active KEK."""
    async with unit_of_work(engine) as session:
        await _scoped(session, None)
        rows = list((await session.execute(select(DataKey))).scalars())
        counts = await ciphertexts_per_key(session)
        reasons = []
        for row in rows:
            named = counts.get((row.owner_id, row.key_id), 0) if row.purpose == FIELDS else 0
            if row.retired_at is not None and named:
                reasons.append(
                    f"{named} ciphertexts of {owner_label(row.owner_id)} still name retired "
                    f"key {row.key_id}: run `wealthwise keys rotate --no-kek` first"
                )
        unwrapped = sum(1 for row in rows if row.kek_id != keyring.kek.key_id)
        if unwrapped:
            reasons.append(
                f"{unwrapped} data keys are not wrapped by the active KEK "
                f"{keyring.kek.key_id}: run `wealthwise keys rotate --kek --no-data-keys` first"
            )
        if reasons:
            raise RotationError("refusing to purge: " + "; ".join(reasons))
        deleted = wrappings = audit_keys = 0
        kept = await ciphertexts_per_key(session, APPEND_ONLY)
        for row in rows:
            if row.retired_at is not None and kept.get((row.owner_id, row.key_id)):
                # still named by the append-only audit trail: decrypt-only, never destroyed
                audit_keys += 1
                if row.previous_wrapped is not None:
                    row.previous_kek_id, row.previous_wrapped = None, None
                    wrappings += 1
            elif row.retired_at is not None:
                await session.delete(row)
                deleted += 1
            elif row.previous_wrapped is not None:
                row.previous_kek_id, row.previous_wrapped = None, None
                wrappings += 1
        await session.flush()
    return Purged(deleted, wrappings, audit_keys)
