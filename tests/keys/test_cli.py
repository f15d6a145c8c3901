"""`wealthwise keys rotate | status | purge-retired` as an operator runs them."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import stat
from decimal import Decimal
from typing import Any

import pytest

from domain.core.crypto import DecryptionError, KeyEncryptionKey, load_key_file, write_key_file
from domain.core.db import bind_scope, create_engine, unit_of_work
from domain.core.keys import Keyring
from domain.core.settings import Settings
from domain.identity import service as identity
from domain.ledger import transactions as tx_service
from schema.ids import decode_id
from tests.graphql import PASSWORD
from tests.keys.test_rotation import household
from tests.keys.walk import (
    ROOT,
    api_process,
    cli_command,
    cli_environment,
    new_kek_only,
    open_every_value,
    run_cli,
    with_new_kek,
)
from tests.services import TEST_KEK


def _status_rows(output: str) -> list[tuple[str, str, int, str, int]]:
    """(owner, purpose, key id, state, ciphertexts) from `keys status`."""
    rows = []
    for line in output.splitlines():
        parts = line.split()
        if parts and parts[0] in ("workspace", "system") and parts[-1].isdigit():
            owner = "system" if parts[0] == "system" else parts[1]
            rows.append((owner, parts[-4], int(parts[-3]), parts[-2], int(parts[-1])))
    return rows


async def test_an_interrupted_rotation_finishes_when_run_again(
    database: Settings, make_client: Any
) -> None:
    asha = await household(make_client(), "Asha", 30)
    operator = with_new_kek(database)
    process = await asyncio.create_subprocess_exec(
        *cli_command("rotate", "--batch-size", "3"),
        cwd=ROOT,
        env=cli_environment(operator),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    output = []
    async for line in process.stdout:
        output.append(line.decode())
        if ": transactions " in output[-1]:
            process.kill()  # a crash in the middle of the re-encryption
            break
    await process.communicate()
    assert process.returncode == -signal.SIGKILL, "".join(output)

    workspace = str(decode_id(asha.workspace, "Workspace"))
    rows = _status_rows(run_cli(operator, "status").stdout)
    mine = {(key, state) for owner, purpose, key, state, _ in rows if owner == workspace}
    assert mine == {(1, "old"), (2, "active")}, rows
    halfway = await open_every_value(new_kek_only(database))
    assert set(halfway[decode_id(asha.workspace, "Workspace")]) == {1, 2}
    await asha.check_everything()  # the API serves the half-rotated workspace

    finished = run_cli(operator, "rotate", "--batch-size", "3")
    assert finished.returncode == 0, finished.stderr
    assert "finishing an interrupted rotation of 1 key owner(s)" in finished.stdout
    assert "created new data keys" not in finished.stdout
    values = await open_every_value(new_kek_only(database))
    assert all(set(counter) == {2} for counter in values.values()), values
    rows = _status_rows(run_cli(operator, "status").stdout)
    assert {(key, state) for owner, _, key, state, _ in rows if owner == workspace} == {
        (1, "retired"),
        (2, "active"),
    }
    await asha.check_everything()


async def test_purge_retired_refuses_while_a_retired_key_is_still_named(
    database: Settings, make_client: Any
) -> None:
    asha = await household(make_client(), "Asha", 5)
    operator = with_new_kek(database)
    # A process whose keyring never refreshes: it keeps sealing with key 1 after the rotation.
    stale = Keyring(KeyEncryptionKey.from_base64(TEST_KEK), refresh_seconds=3600)
    engine = create_engine(database)
    async with unit_of_work(engine, write=False) as session:
        user = await identity.authenticate(session, stale, asha.email, PASSWORD)
        tenant = await identity.open_tenant(session, stale, user.id, None)

    refused = run_cli(operator, "purge-retired")
    assert refused.returncode == 1
    assert "not wrapped by the active KEK" in refused.stderr
    rotated = run_cli(operator, "rotate", "--batch-size", "4")
    assert rotated.returncode == 0, rotated.stderr

    draft = tx_service.TransactionDraft(
        account_id=decode_id(asha.account, "Account"),
        category_id=decode_id(asha.category, "Category"),
        date=dt.date(2024, 2, 15),
        amount=Decimal("-9.99"),
        payee="Late write",
    )
    async with unit_of_work(engine) as session:
        await bind_scope(session, workspace_id=tenant.workspace_id)
        await tx_service.post(session, tenant, draft, idempotency_key="late")
    await engine.dispose()

    before = run_cli(operator, "status").stdout
    refused = run_cli(operator, "purge-retired")
    assert refused.returncode == 1
    assert "still name retired key 1: run `wealthwise keys rotate --no-kek` first" in refused.stderr
    workspace = str(decode_id(asha.workspace, "Workspace"))
    rows = _status_rows(run_cli(operator, "status").stdout)
    assert run_cli(operator, "status").stdout == before  # refusing changed nothing
    assert (workspace, "fields", 1, "retired") in {row[:4] for row in rows}
    assert next(row[4] for row in rows if row[:4] == (workspace, "fields", 1, "retired")) > 0

    again = run_cli(operator, "rotate", "--no-kek", "--workspace", asha.workspace)
    assert again.returncode == 0, again.stderr
    purged = run_cli(operator, "purge-retired")
    assert purged.returncode == 0, purged.stderr
    # workspace key 2 goes; system key 1 and workspace key 1 sealed audit-trail IPs, which
    # are never re-encrypted (the chain hashes them): they stay, for decryption only
    assert "destroyed 1 retired data key(s)" in purged.stdout
    assert "kept 2 retired data key(s) for decryption only" in purged.stdout
    assert "WEALTHWISE_KEK_PREVIOUS is no longer needed" in purged.stdout
    values = await open_every_value(new_kek_only(database))
    assert set(values[decode_id(asha.workspace, "Workspace")]) == {3}
    with pytest.raises(DecryptionError):  # the old KEK opens nothing any more
        await open_every_value(database)


async def test_embedded_kek_rotation_replaces_the_key_file(
    database: Settings, make_client: Any
) -> None:
    asha = await household(make_client(), "Asha", 3)
    key_file = database.data_dir / "rotating-kek.key"
    write_key_file(key_file, [KeyEncryptionKey.from_base64(TEST_KEK)])
    embedded = database.model_copy(update={"kek": None, "kek_file": key_file})

    rotated = run_cli(embedded, "rotate", "--no-data-keys")
    assert rotated.returncode == 0, rotated.stderr
    keys = load_key_file(key_file)
    assert [key.to_base64() for key in keys[1:]] == [TEST_KEK]
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert f"wrote a new KEK {keys[0].key_id}" in rotated.stdout
    assert all(set(counter) == {1} for counter in (await open_every_value(embedded)).values())
    # The API still running with the old KEK keeps working.
    await asha.check_everything()
    old_only = await open_every_value(database)
    assert sum(sum(counter.values()) for counter in old_only.values()) > 10

    purged = run_cli(embedded, "purge-retired")
    assert purged.returncode == 0, purged.stderr
    assert [key.key_id for key in load_key_file(key_file)] == [keys[0].key_id]
    await open_every_value(embedded)
    with pytest.raises(DecryptionError):
        await open_every_value(database)


async def test_a_pagination_cursor_outlives_a_kek_rotation(
    database: Settings, make_client: Any
) -> None:
    client = make_client()
    asha = await household(client, "Asha", 3)
    page = (
        "query($a: String) { transactions(first: 1, after: $a) { edges { cursor node { id } } } }"
    )
    first = (await client.ok(page))["transactions"]["edges"][0]
    rotated = run_cli(with_new_kek(database), "rotate", "--no-data-keys")
    assert rotated.returncode == 0, rotated.stderr
    async with api_process(new_kek_only(database)) as (other, _services):
        await other.ok(LOGIN, e=asha.email, p=PASSWORD)
        after = (await other.ok(page, a=first["cursor"]))["transactions"]["edges"]
    assert after and after[0]["node"]["id"] != first["node"]["id"]


LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { user { id } } }"
