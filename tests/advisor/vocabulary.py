"""The demo household's names as an analyst vocabulary (no database needed).

Categories are the defaults every workspace gets; accounts and payees are the ones
`domain.demo` creates, taken from its own generator so the fixture cannot drift from it.
"""

from __future__ import annotations

import uuid
from datetime import date
from functools import cache

from domain import demo
from domain.advisor.analyst.names import Name, Vocabulary
from domain.ledger.categories import DEFAULT_CATEGORIES
from domain.ledger.transactions import TransactionDraft

ANCHOR = date(2026, 11, 30)


def _id(kind: str, name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"demo/{kind}/{name}"))


@cache
def demo_names() -> tuple[Name, ...]:
    categories = [
        name
        for tree in DEFAULT_CATEGORIES.values()
        for parent, children in tree.items()
        for name in (parent, *children)
    ]
    category_ids = {name: uuid.UUID(_id("category", name)) for name in categories}
    account_ids = {spec.key: uuid.UUID(_id("account", spec.name)) for spec in demo.ACCOUNTS}
    drafts, _ = demo._plan(ANCHOR, account_ids, category_ids)
    payees = sorted({draft.payee for draft in drafts if draft.payee})
    assert any(isinstance(draft, TransactionDraft) for draft in drafts)
    return (
        *(Name(_id("category", name), name, "category") for name in categories),
        *(Name(payee, payee, "payee") for payee in payees),
        *(Name(_id("account", spec.name), spec.name, "account") for spec in demo.ACCOUNTS),
    )


@cache
def demo_vocabulary() -> Vocabulary:
    return Vocabulary(demo_names())
