"""The demo plan (no database): deterministic, inside its window, the intended size."""

from __future__ import annotations

import uuid
from datetime import date

from domain import demo
from domain.ledger.transactions import TransactionDraft


def _plan(anchor: date) -> tuple[list[demo.Draft], list[tuple[date, object]]]:
    accounts = {spec.key: uuid.uuid5(uuid.NAMESPACE_DNS, spec.key) for spec in demo.ACCOUNTS}
    categories = {name: uuid.uuid5(uuid.NAMESPACE_DNS, name) for name in demo._CATEGORIES}
    drafts, rates = demo._plan(anchor, accounts, categories)
    return drafts, list(rates)


def test_the_demo_plan_is_deterministic_and_ends_at_the_anchor() -> None:
    anchor = date(2026, 3, 14)
    drafts, rates = _plan(anchor)
    assert (drafts, rates) == _plan(anchor)
    assert 2_500 <= len(drafts) <= 4_500
    assert drafts[0].date == date(2023, 4, 1) == demo.first_month(anchor)
    assert drafts[-1].date <= anchor
    assert len(rates) == 36
    amounts = [d.amount for d in drafts if isinstance(d, TransactionDraft) and d.amount]
    assert all(amount.as_tuple().exponent == -2 for amount in amounts)
