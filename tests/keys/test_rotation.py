"""`wealthwise keys rotate` while the API serves: nothing fails, everything ends under new keys."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from domain.core.crypto import SYSTEM_OWNER, ciphertext_key_id
from domain.core.db import bind_scope, create_engine, unit_of_work
from domain.core.keys import Keyring
from domain.core.settings import Settings
from domain.encryption import rotation
from domain.encryption.registry import ENCRYPTED
from domain.identity import service as identity
from domain.ledger.models import Transaction
from schema.ids import decode_id, encode_id
from tests.graphql import PASSWORD, Client, category_ids, create_account, post, register
from tests.keys.walk import api_process, new_kek_only, open_every_value, with_new_kek

LOGIN = """mutation($e: String!, $p: String!) { login(email: $e, password: $p) { user { id } } }"""
EDIT = """
mutation($id: ID!, $i: TransactionInput!, $k: String!) {
  editTransaction(id: $id, input: $i, idempotencyKey: $k) { id payee }
}"""
READ = """
query {
  me { user { email name } workspaces { name } }
  accounts { id name number balance { amount } }
  transactions(first: 30) { edges { node { id payee notes amount { amount } } } }
}"""
ALL = """
query($after: String) {
  transactions(first: 100, after: $after) {
    edges { node { id payee notes amount { amount } } }
    pageInfo { hasNextPage endCursor }
  }
}"""


@dataclass
class Household:
    """One person's workspace as the traffic sees it: what it wrote, what it expects."""

    client: Client
    email: str
    workspace: str
    account: str
    category: str
    amounts: dict[str, Decimal] = field(default_factory=dict)
    payees: dict[str, str] = field(default_factory=dict)
    requests: int = 0

    async def spend(self, step: int) -> None:
        amount = Decimal(f"-{step}.25")
        payee = f"Shop {step}"
        tx = await post(
            self.client, self.account, self.category, str(amount), payee=payee, notes=f"n{step}"
        )
        self.amounts[tx], self.payees[tx] = amount, payee
        self.requests += 1

    async def edit(self, step: int, tx: str | None = None) -> None:
        tx = tx or list(self.amounts)[step % len(self.amounts)]
        payee = f"Edited {step}"
        draft = {
            "accountId": self.account,
            "categoryId": self.category,
            "amount": str(self.amounts[tx]),
            "date": "2025-03-11",
            "payee": payee,
        }
        await self.client.ok(EDIT, id=tx, i=draft, k=uuid.uuid4().hex)
        self.payees[tx] = payee
        self.requests += 1

    async def read(self) -> None:
        data = await self.client.ok(READ)
        assert data["me"]["user"]["email"] == self.email
        assert data["accounts"][0]["number"] == "50100123456789"
        for edge in data["transactions"]["edges"]:
            node = edge["node"]
            if node["id"] in self.payees:
                assert node["payee"] == self.payees[node["id"]]
        self.requests += 1

    async def check_everything(self) -> None:
        seen: dict[str, tuple[str, Decimal]] = {}
        after = None
        while True:
            page = (await self.client.ok(ALL, after=after))["transactions"]
            for edge in page["edges"]:
                node = edge["node"]
                seen[node["id"]] = (node["payee"], Decimal(node["amount"]["amount"]))
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert seen == {tx: (self.payees[tx], self.amounts[tx]) for tx in self.amounts}
        data = await self.client.ok(READ)
        assert Decimal(data["accounts"][0]["balance"]["amount"]) == sum(self.amounts.values())


async def household(client: Client, name: str, transactions: int) -> Household:
    session = await register(client, name=name)
    account = await create_account(client, number="50100123456789")
    food = (await category_ids(client))["Food"]
    household = Household(client, session["email"], session["workspaces"][0]["id"], account, food)
    for step in range(1, transactions + 1):
        await household.spend(step)
    return household


async def _login(client: Client, person: Household) -> Household:
    """The same person signed in on another process (sharing what they expect to see)."""
    await client.ok(LOGIN, e=person.email, p=PASSWORD)
    return Household(
        client,
        person.email,
        person.workspace,
        person.account,
        person.category,
        person.amounts,
        person.payees,
    )


async def _traffic(people: list[Household], stop: asyncio.Event) -> int:
    """Keep writing and reading through the API until told to stop; any error fails."""
    step = 1000
    while not stop.is_set():
        for person in people:
            step += 1
            await person.spend(step)
            await person.edit(step)
            await person.read()
    return step


async def test_rotation_while_the_api_serves_old_and_new_kek_processes(
    database: Settings, make_client: Any
) -> None:
    # Process A runs with the old KEK throughout; process B was deployed with the new KEK
    # (and the old one as previous). Both serve the same households during the rotation.
    asha = await household(make_client(), "Asha", 40)
    rohan = await household(make_client(), "Rohan", 25)
    operator = with_new_kek(database)
    async with api_process(operator) as (new_process, _):
        asha_on_b = await _login(new_process, asha)
        stop = asyncio.Event()
        traffic = asyncio.create_task(_traffic([asha, rohan, asha_on_b], stop))
        engine = create_engine(operator, owner=True)
        progress: list[str] = []
        try:
            await asyncio.sleep(0.3)
            before = asha.requests + rohan.requests + asha_on_b.requests
            started = time.monotonic()
            keyring = await rotation.rotate_kek(engine, operator, progress.append)
            done = await rotation.rotate_data_keys(
                engine, keyring, batch_size=7, report=progress.append
            )
            elapsed = time.monotonic() - started
            during = asha.requests + rohan.requests + asha_on_b.requests - before
            await asyncio.sleep(0.5)  # both processes keep working after the rotation
        finally:
            stop.set()
            await traffic
            await engine.dispose()
        # Traffic flowed for the whole rotation (writes, edits and reads in every batch gap).
        print(f"rotation took {elapsed:.2f}s while {during} API requests succeeded")
        assert elapsed > 0.5 and during >= 15, (elapsed, during)
        assert any("transactions " in line for line in progress), progress
        await asha.check_everything()
        await rohan.check_everything()
        await asha_on_b.check_everything()

    # Three owners (system + two workspaces), each on key 2 with key 1 retired.
    assert sorted((r.key_id, r.retired) for r in done) == [(2, [1])] * 3
    # Every sealed value opens with the new KEK alone and names its owner's new key.
    values = await open_every_value(new_kek_only(database))
    assert set(values) == {SYSTEM_OWNER, *(r.owner for r in done)}
    assert all(set(counter) == {2} for counter in values.values()), values
    assert sum(sum(counter.values()) for counter in values.values()) > 300
    # A process that still holds only the old KEK keeps working after the rotation.
    old_process = Keyring.from_settings(database)
    engine = create_engine(database)
    async with unit_of_work(engine, write=False) as session:
        user = await identity.authenticate(session, old_process, asha.email, PASSWORD)
        tenant = await identity.open_tenant(session, old_process, user.id, None)
        assert tenant.cipher.active_key_id == 2
        assert (await identity.profile(session, old_process, user)).email == asha.email
    await engine.dispose()


async def test_a_batch_never_overwrites_a_concurrent_api_write(database: Settings) -> None:
    # An API process whose new key is loaded but not yet active (it becomes active 10 s
    # after its creation): the API's edit is sealed under the old key mid-batch.
    slow = database.model_copy(update={"key_refresh_seconds": 5.0})
    engine = create_engine(slow)
    keyring = Keyring.from_settings(slow)
    try:
        workspace_id = await _edit_during_a_batch(slow, engine, keyring)
    finally:
        await engine.dispose()
    values = await open_every_value(slow)
    assert set(values[workspace_id]) == {2}
    assert set(values[SYSTEM_OWNER]) == {1}  # only the workspace was rotated


async def _edit_during_a_batch(slow: Settings, engine: AsyncEngine, keyring: Keyring) -> uuid.UUID:
    async with api_process(slow) as (client, api):
        asha = await household(client, "Asha", 5)
        workspace_id = decode_id(asha.workspace, "Workspace")
        await rotation.add_keys(engine, keyring, [workspace_id])
        api.keyring.forget()  # as when its 5 s cache runs out: it reads the keys again
        cipher = await rotation.rotation_cipher(engine, keyring, workspace_id, 2)
        transactions = next(table for table in ENCRYPTED if table.name == "transactions")
        batch = await rotation.read_batch(engine, cipher, transactions, None, 100)
        assert {encode_id("Transaction", row_id) for row_id, _ in batch} == set(asha.amounts)
        edited = encode_id("Transaction", batch[0][0])
        await asha.edit(1, edited)  # between the batch's read and its write
        await rotation.write_batch(engine, workspace_id, transactions, batch)
        await asha.check_everything()
        async with unit_of_work(engine, write=False) as session:
            await bind_scope(session, workspace_id=workspace_id)
            payee = await session.scalar(
                select(Transaction.payee_enc).where(Transaction.id == batch[0][0])
            )
        assert payee is not None and ciphertext_key_id(payee) == 1  # the swap missed
        done = await rotation.rotate_owner(engine, keyring, workspace_id, 2, batch_size=2)
        assert done.retired == [1] and done.sweeps == 1
        await asha.check_everything()
        assert asha.payees[edited] == "Edited 1"
    return workspace_id
