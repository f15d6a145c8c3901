"""A hypothesis state machine drives random ledger writes and checks the invariants.

After every step: each transaction balances per currency, each account balance equals
its opening balance plus the sum of its postings (and the model's expectation), and
no retry with the same idempotency key ever posts twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from domain.core.db import create_engine, unit_of_work
from domain.core.errors import BadInput
from domain.core.keys import Keyring
from domain.core.settings import Settings
from domain.identity import service as identity
from domain.ledger import accounts, fx
from domain.ledger import transactions as tx
from domain.ledger.models import Posting
from domain.ledger.repository import LedgerRepository

amounts = st.integers(min_value=1, max_value=5_000_000).map(lambda m: Decimal(m) / 100)
dates = st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2025, 12, 31))


class LedgerMachine(RuleBasedStateMachine):
    database: Settings
    transactions = Bundle("transactions")
    keys = Bundle("keys")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.engine = create_engine(self.database)
        self.keyring = Keyring.from_settings(self.database)
        self.expected: dict[uuid.UUID, dict[uuid.UUID, int]] = {}  # tx -> account -> minor
        self.replies: dict[str, tuple[Any, uuid.UUID | None]] = {}

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.run(self.engine.dispose())
        self.loop.close()

    async def _tenant(self, session: Any) -> Any:
        return await identity.open_tenant(session, self.keyring, self.user_id, self.workspace_id)

    @initialize()
    def household(self) -> None:
        async def build() -> None:
            async with unit_of_work(self.engine) as session:
                user = await identity.register(
                    session,
                    self.keyring,
                    email=f"m-{uuid.uuid4().hex}@example.com",
                    password="0123456789ab",
                    name="Machine",
                )
                self.user_id = user.id
                tenant = await identity.open_tenant(session, self.keyring, user.id, None)
                self.workspace_id = tenant.workspace_id
                self.accounts = [
                    (
                        await accounts.create_account(
                            session,
                            tenant,
                            name=name,
                            kind="checking",
                            currency=currency,
                            opening_balance=opening,
                        )
                    ).id
                    for name, currency, opening in (
                        ("A", "INR", "1000"),
                        ("B", "INR", "0"),
                        ("C", "USD", "50.25"),
                    )
                ]
                self.currency = dict(zip(self.accounts, ("INR", "INR", "USD"), strict=True))
                self.opening = dict(zip(self.accounts, (100000, 0, 5025), strict=True))
                cats = await LedgerRepository(session, tenant.workspace_id).categories()
                self.categories = [c.id for c in cats if c.kind in ("income", "expense")][:6]
                await fx.set_rate(
                    session, tenant, base="USD", quote="INR", on=dt.date(2024, 1, 1), rate="83.25"
                )

        self.run(build())

    def _write(self, key: str, payload: Any, operation: Any) -> uuid.UUID | None:
        """Run one write in its own database transaction, as a GraphQL request would."""

        async def go() -> uuid.UUID | None:
            async with unit_of_work(self.engine) as session:
                return await operation(session, await self._tenant(session))

        replay = self.replies.get(key)
        try:
            result = self.run(go())
        except BadInput:
            return None
        if replay is not None:
            assert replay[0] == payload, "a key reused with another input must fail"
            assert result == replay[1], "a retry must return the first result"
            return None
        self.replies[key] = (payload, result)
        return result

    def _draft(
        self, data: st.DataObject, account_index: int, amount: Decimal, split: bool
    ) -> tx.TransactionDraft:
        account = self.accounts[account_index]
        if self.currency[account] == "USD":
            amount = amount.quantize(Decimal("0.01"))
        if not split:
            category = data.draw(st.sampled_from(self.categories))
            return tx.TransactionDraft(
                account_id=account,
                date=data.draw(dates),
                amount=-amount,
                category_id=category,
                payee="p",
            )
        parts = data.draw(
            st.lists(st.tuples(st.sampled_from(self.categories), amounts), min_size=2, max_size=4)
        )
        return tx.TransactionDraft(
            account_id=account,
            date=data.draw(dates),
            splits=tuple(tx.SplitDraft(category_id=c, amount=-a) for c, a in parts),
        )

    def _effect(self, draft: tx.TransactionDraft) -> dict[uuid.UUID, int]:
        total = draft.amount if draft.amount is not None else sum(s.amount for s in draft.splits)
        return {draft.account_id: int(Decimal(total) * 100)}

    @rule(
        target=transactions,
        data=st.data(),
        account=st.integers(0, 2),
        amount=amounts,
        split=st.booleans(),
    )
    def post(self, data: st.DataObject, account: int, amount: Decimal, split: bool) -> Any:
        draft = self._draft(data, account, amount, split)
        key = uuid.uuid4().hex
        result = self._write(key, ("post", draft), lambda s, t: self._post(s, t, draft, key))
        assert result is not None
        self.expected[result] = self._effect(draft)
        return result

    async def _post(self, session: Any, tenant: Any, draft: Any, key: str) -> uuid.UUID:
        return (await tx.post(session, tenant, draft, idempotency_key=key)).id

    @rule(
        target=transactions,
        source=st.integers(0, 2),
        target_account=st.integers(0, 2),
        amount=amounts,
        date=dates,
    )
    def transfer(self, source: int, target_account: int, amount: Decimal, date: dt.date) -> Any:
        a, b = self.accounts[source], self.accounts[target_account]
        if a == b:
            return None
        to_amount = None
        if self.currency[a] != self.currency[b]:
            rate = Decimal(1) / 83 if self.currency[b] == "USD" else Decimal(83)
            to_amount = max((amount * rate).quantize(Decimal("0.01")), Decimal("0.01"))
        draft = tx.TransferDraft(
            from_account_id=a, to_account_id=b, date=date, amount=amount, to_amount=to_amount
        )
        key = uuid.uuid4().hex
        result = self._write(key, ("transfer", draft), lambda s, t: self._post(s, t, draft, key))
        assert result is not None
        self.expected[result] = {a: -int(amount * 100), b: int((to_amount or amount) * 100)}
        return result

    @rule(
        data=st.data(),
        target_tx=transactions,
        account=st.integers(0, 2),
        amount=amounts,
        split=st.booleans(),
    )
    def edit(
        self, data: st.DataObject, target_tx: Any, account: int, amount: Decimal, split: bool
    ) -> None:
        if target_tx not in self.expected:
            return
        draft = self._draft(data, account, amount, split)
        key = uuid.uuid4().hex

        async def go(session: Any, tenant: Any) -> uuid.UUID:
            return (await tx.edit(session, tenant, target_tx, draft, idempotency_key=key)).id

        if self._write(key, ("edit", target_tx, draft), go) is not None:
            self.expected[target_tx] = self._effect(draft)

    @rule(target_tx=consumes(transactions))
    def delete(self, target_tx: Any) -> None:
        if target_tx not in self.expected:
            return
        key = uuid.uuid4().hex

        async def go(session: Any, tenant: Any) -> uuid.UUID:
            return await tx.remove(session, tenant, target_tx, idempotency_key=key)

        assert self._write(key, ("delete", target_tx), go) == target_tx
        del self.expected[target_tx]

    @rule(data=st.data())
    def retry_a_previous_write(self, data: st.DataObject) -> None:
        """Replay a key with its original input: the first result comes back, nothing moves."""
        if not self.replies:
            return
        key = data.draw(st.sampled_from(sorted(self.replies)))
        payload, _first = self.replies[key]
        kind = payload[0]
        if kind in ("post", "transfer"):
            operation: Any = lambda s, t: self._post(s, t, payload[1], key)  # noqa: E731
        elif kind == "edit":

            async def operation(s: Any, t: Any) -> uuid.UUID:
                return (await tx.edit(s, t, payload[1], payload[2], idempotency_key=key)).id
        else:

            async def operation(s: Any, t: Any) -> uuid.UUID:
                return await tx.remove(s, t, payload[1], idempotency_key=key)

        try:
            self._write(key, payload, operation)
        except Exception as error:  # a replayed edit of a since-deleted transaction: CONFLICT
            assert getattr(error, "code", None) == "CONFLICT", error

    @invariant()
    def ledger_is_consistent(self) -> None:
        if not hasattr(self, "workspace_id"):
            return

        async def check() -> None:
            async with unit_of_work(self.engine, write=False) as session:
                tenant = await self._tenant(session)
                rows = (
                    (
                        await session.execute(
                            select(Posting).where(Posting.workspace_id == self.workspace_id)  # type: ignore[arg-type]
                        )
                    )
                    .scalars()
                    .all()
                )
                per_tx: dict[uuid.UUID, dict[str, int]] = defaultdict(lambda: defaultdict(int))
                per_account: dict[uuid.UUID, int] = defaultdict(int)
                for posting in rows:
                    amount = tx.posting_view(tenant, posting).amount.minor
                    per_tx[posting.transaction_id][posting.currency] += amount
                    if posting.account_id:
                        per_account[posting.account_id] += amount
                for transaction_id, sums in per_tx.items():
                    assert all(v == 0 for v in sums.values()), (transaction_id, dict(sums))
                assert set(per_tx) == set(self.expected), (
                    "a retry double-posted or a write was lost"
                )
                repository = LedgerRepository(session, self.workspace_id)
                balances = await accounts.balances(session, tenant, await repository.accounts())
                for account_id, money in balances.items():
                    assert money.minor == self.opening[account_id] + per_account[account_id]
                    modelled = sum(e.get(account_id, 0) for e in self.expected.values())
                    assert money.minor == self.opening[account_id] + modelled

        self.run(check())


def test_random_ledger_writes_keep_every_invariant(database: Settings) -> None:
    LedgerMachine.database = database
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=20,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


@pytest.mark.parametrize("currency,amount", [("JPY", "1.5"), ("INR", "0.001"), ("BHD", "0.0001")])
def test_amounts_with_too_many_decimals_are_refused(currency: str, amount: str) -> None:
    from domain.core.money import Money

    with pytest.raises(BadInput):
        Money.parse(amount, currency)
