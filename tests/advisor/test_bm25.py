"""The BM25 side on its own: both scorers, filters, query repair."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.advisor.retrieval.bm25 import Engine, WorkspaceBM25, repair_query, tokenize
from domain.advisor.retrieval.documents import TransactionDocument
from domain.advisor.retrieval.port import SearchFilter
from domain.advisor.retrieval.source import changed_transactions
from domain.realtime.envelope import Envelope

WORKSPACE = uuid.uuid4()
TEXTS = {
    "swiggy": ("Swiggy", 20261001, "a1", "food"),
    "ola": ("Ola Ride to airport", 20261002, "a1", "rides"),
    "uber": ("Uber", 20261003, "a2", "rides"),
    "bigbasket": ("BigBasket Monthly stock-up", 20260901, "a1", "groceries"),
    "natures": ("Nature's Basket", 20260902, "a2", "groceries"),
}


def _index(engine: Engine) -> tuple[WorkspaceBM25, dict[str, uuid.UUID]]:
    ids = {key: uuid.uuid4() for key in TEXTS}
    index = WorkspaceBM25(engine)
    index.upsert(
        TransactionDocument(ids[key], WORKSPACE, day, (account,), (category,), text)
        for key, (text, day, account, category) in TEXTS.items()
    )
    return index, ids


@pytest.mark.parametrize("engine", ["rank_bm25", "bm25s"])
def test_both_scorers_rank_filter_and_repair_the_same_way(engine: Engine) -> None:
    index, ids = _index(engine)

    def top(query: str, where: SearchFilter | None = None) -> list[uuid.UUID]:
        return [tid for tid, _ in index.search(query, 10, where)]

    assert top("rides to the airport") == [ids["ola"]]
    assert top("Swigy") == [ids["swiggy"]]
    assert top("big basket") == [ids["bigbasket"]]
    assert top("basket") == [ids["natures"]]
    assert top("espresso") == []
    assert top("uber OR ola", SearchFilter(account_ids=frozenset({"a2"}))) == [ids["uber"]]
    assert top("ola uber", SearchFilter(start=20261003)) == [ids["uber"]]
    assert top("basket", SearchFilter(category_ids=frozenset({"rides"}))) == []
    index.remove([ids["ola"]])
    assert top("airport") == []


def test_query_repair_joins_neighbours_and_fixes_spellings_but_not_short_words() -> None:
    vocabulary = frozenset(tokenize("BigBasket Swiggy Zomato Netflix Apollo Pharmacy"))
    spellings = sorted(vocabulary)
    assert repair_query("big basket", vocabulary, spellings) == ["bigbasket"]
    assert repair_query("Zomatto and Netflx", vocabulary, spellings) == ["zomato", "netflix"]
    assert repair_query("apolo pharmacy", vocabulary, spellings) == ["apollo", "pharmaci"]
    assert repair_query("ab", vocabulary, spellings) == []  # too short to guess at
    assert repair_query("quokka", vocabulary, spellings) == []


def test_a_large_index_rebuilds_in_the_background_and_never_returns_a_removed_document() -> None:
    index, ids = _index("bm25s")
    index.sync_rebuild = 0  # as if the workspace were very large
    assert [tid for tid, _ in index.search("airport", 10)] == [ids["ola"]]
    index.remove([ids["ola"]])
    extra = uuid.uuid4()
    index.upsert([TransactionDocument(extra, WORKSPACE, 20261005, ("a1",), (), "Airport taxi")])
    # The previous scorer still answers, with the removed document hidden.
    assert ids["ola"] not in [tid for tid, _ in index.search("airport", 10)]
    index.wait_for_rebuild(timeout=10)
    assert [tid for tid, _ in index.search("airport", 10)] == [extra]


def test_outbox_events_name_the_transactions_to_index_per_workspace() -> None:
    first, second, moved, gone = (uuid.uuid4() for _ in range(4))
    at = datetime.now(UTC)

    def event(workspace: uuid.UUID, seq: int, kind: str, data: dict[str, Any]) -> Envelope:
        return Envelope(workspace, seq, kind, data, at)

    events = [
        event(first, 1, "transaction.posted", {"transaction": str(moved)}),
        event(first, 2, "balance.changed", {"accounts": []}),
        event(second, 1, "transaction.deleted", {"transaction": str(gone)}),
        event(first, 3, "transaction.edited", {"transaction": str(moved)}),
    ]
    assert changed_transactions(events) == {first: [moved], second: [gone]}
