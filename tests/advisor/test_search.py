"""Hybrid search over real ledgers (SQLite and PostgreSQL), with Qdrant Edge and a Qdrant
client (":memory:", the same client API as a server) as the vector index."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from qdrant_client import AsyncQdrantClient

from domain.advisor.embeddings import CachedEmbedder, Vector
from domain.advisor.embeddings.minilm import MiniLMEmbedder
from domain.advisor.retrieval.service import HybridSearch
from domain.advisor.retrieval.source import LedgerSource
from domain.advisor.retrieval.vectors import (
    EdgeVectorIndex,
    IndexMismatch,
    ServerVectorIndex,
    VectorIndex,
)
from domain.core.db import bind_scope, unit_of_work
from domain.ledger import transactions as tx
from schema.context import AppServices
from tests.realtime.helpers import Household, household

pytestmark = pytest.mark.filterwarnings(
    # qdrant-client's local mode says payload indexes are a server feature: true, harmless.
    "ignore:Payload indexes have no effect in the local Qdrant:UserWarning"
)

DAY = dt.date(2026, 10, 15)
ALLOWED_PAYLOAD = {"workspace_id", "date", "account_ids", "category_ids"}


@dataclass(frozen=True)
class Spend:
    payee: str
    narration: str | None
    notes: str | None
    category: str
    amount: str
    day: dt.date = DAY
    other_account: bool = False


HOUSEHOLD_A = (
    Spend("Swiggy", None, None, "Food delivery", "-642.50"),
    Spend("Ola", "Ride to airport", None, "Rides", "-1180.00"),
    Spend("BESCOM", "BESCOM electricity bill Oct 2026", None, "Utilities", "-2315.00"),
    Spend("Netflix", None, None, "Streaming", "-649.00", dt.date(2026, 9, 3)),
    Spend("Zanzibar Spice Emporium", None, "birthday surprise for Mira", "Groceries", "-777.77"),
    Spend("Third Wave Coffee", None, None, "Dining out", "-380.00", other_account=True),
)
HOUSEHOLD_B = (
    Spend("Quokka Bicycle Repairs", "Gear tune-up", None, "Household", "-1500.00"),
    Spend("Uber", "Ride to airport", None, "Rides", "-910.00"),
)


async def _post(services: AppServices, home: Household, spends: Sequence[Spend]) -> list[uuid.UUID]:
    ids = []
    async with unit_of_work(services.engine) as session:
        await bind_scope(session, workspace_id=home.tenant.workspace_id)
        for spend in spends:
            draft = tx.TransactionDraft(
                account_id=home.other_account_id if spend.other_account else home.account_id,
                date=spend.day,
                amount=Decimal(spend.amount),
                category_id=home.category_ids[spend.category],
                payee=spend.payee,
                narration=spend.narration,
                notes=spend.notes,
            )
            view = await tx.post(session, home.tenant, draft, idempotency_key=uuid.uuid4().hex)
            ids.append(view.id)
    return ids


@pytest.fixture(params=["edge", "client"])
async def vectors(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorIndex]:
    index: VectorIndex
    if request.param == "edge":
        index = EdgeVectorIndex(tmp_path / "edge")
    else:
        index = ServerVectorIndex(AsyncQdrantClient(":memory:"), "transactions")
    yield index
    await index.close()


@pytest.fixture
async def search(
    services: AppServices, vectors: VectorIndex, minilm: MiniLMEmbedder
) -> HybridSearch:
    embedder = CachedEmbedder(minilm, b"s" * 32)
    found = HybridSearch(embedder, vectors, source=LedgerSource(services.engine, services.keyring))
    await found.start()
    return found


async def _index(services: AppServices, search: HybridSearch, home: Household) -> None:
    async with unit_of_work(services.engine, write=False) as session:
        await bind_scope(session, workspace_id=home.tenant.workspace_id)
        await search.index_workspace(session, home.tenant)


async def _update(
    services: AppServices, search: HybridSearch, home: Household, ids: list[uuid.UUID]
) -> None:
    async with unit_of_work(services.engine, write=False) as session:
        await bind_scope(session, workspace_id=home.tenant.workspace_id)
        await search.update_transactions(session, home.tenant, ids)


async def _ids(search: HybridSearch, home: Household, query: str, **kwargs: object) -> list:
    hits = await search.search(home.tenant.workspace_id, query, **kwargs)  # type: ignore[arg-type]
    return [hit.transaction_id for hit in hits]


async def test_search_finds_payees_misspellings_and_meanings(
    services: AppServices, search: HybridSearch
) -> None:
    home = await household(services.engine, services.keyring)
    swiggy, ola, bescom, _netflix, zanzibar, coffee = await _post(services, home, HOUSEHOLD_A)
    await _index(services, search, home)
    assert (await _ids(search, home, "Zanzibar Spice Emporium"))[0] == zanzibar
    assert (await _ids(search, home, "electricity"))[0] == bescom
    assert (await _ids(search, home, "rides to the airport"))[0] == ola
    # A misspelling: BM25 repairs it against the workspace's own words.
    assert await _ids(search, home, "swigy", mode="bm25") == [swiggy]
    # No word in common: only the dense side can find it.
    assert await _ids(search, home, "espresso", mode="bm25") == []
    assert (await _ids(search, home, "espresso"))[0] == coffee


async def test_the_vector_collection_holds_ids_and_filter_fields_only(
    services: AppServices, search: HybridSearch, vectors: VectorIndex
) -> None:
    home = await household(services.engine, services.keyring)
    await _post(services, home, HOUSEHOLD_A)
    await _index(services, search, home)
    payloads = await vectors.payloads()
    assert len(payloads) == len(HOUSEHOLD_A)
    for payload in payloads:
        assert set(payload) == ALLOWED_PAYLOAD
        assert isinstance(payload["date"], int)
    dumped = json.dumps(payloads).casefold()
    for spend in HOUSEHOLD_A:
        for text in (spend.payee, spend.narration, spend.notes, spend.amount.lstrip("-")):
            for word in (text or "").casefold().split():
                # Words of the text, and the amount (dates are a filter field, by design).
                if len(word) > 3 and not word.isdigit():
                    assert word not in dumped, word


async def test_a_search_in_one_workspace_never_returns_anothers_transactions(
    services: AppServices, search: HybridSearch, vectors: VectorIndex, minilm: MiniLMEmbedder
) -> None:
    first = await household(services.engine, services.keyring)
    second = await household(services.engine, services.keyring)
    first_ids = set(await _post(services, first, HOUSEHOLD_A))
    second_ids = set(await _post(services, second, HOUSEHOLD_B))
    await _index(services, search, first)
    await _index(services, search, second)
    # Another process: nothing in memory, BM25 loaded from the ledger on first use.
    cold = HybridSearch(
        CachedEmbedder(minilm, b"t" * 32),
        vectors,
        source=LedgerSource(services.engine, services.keyring),
    )
    queries = ["Zanzibar Spice Emporium", "birthday surprise", "BESCOM electricity", "airport"]
    for engine in (search, cold):
        for query in queries:
            for mode in ("fused", "bm25", "dense"):
                hits = await _ids(engine, second, query, limit=50, mode=mode)
                assert set(hits) <= second_ids, (query, mode)
                if mode != "bm25":  # the dense side always answers: not a vacuous check
                    assert hits, (query, mode)
        assert set(await _ids(engine, first, "Ride to airport", limit=50)) <= first_ids


async def test_filters_restrict_dates_accounts_and_categories(
    services: AppServices, search: HybridSearch
) -> None:
    home = await household(services.engine, services.keyring)
    ids = await _post(services, home, HOUSEHOLD_A)
    await _index(services, search, home)
    netflix, coffee = ids[3], ids[5]
    september = await _ids(
        search,
        home,
        "subscription",
        start=dt.date(2026, 9, 1),
        end=DAY.replace(day=1) - dt.timedelta(days=1),
    )
    assert september == [netflix]
    on_wallet = await _ids(search, home, "food", account_ids=[home.other_account_id])
    assert on_wallet == [coffee]
    rides = await _ids(search, home, "airport", category_ids=[home.category_ids["Groceries"]])
    assert rides == [ids[4]]


async def test_an_edit_and_a_delete_reach_both_sides(
    services: AppServices, search: HybridSearch, vectors: VectorIndex, minilm: MiniLMEmbedder
) -> None:
    home = await household(services.engine, services.keyring)
    ids = await _post(services, home, HOUSEHOLD_A)
    await _index(services, search, home)
    # A second process that only follows the outbox, never told about the changes.
    follower = HybridSearch(
        CachedEmbedder(minilm, b"u" * 32),
        vectors,
        source=LedgerSource(services.engine, services.keyring),
    )
    assert await _ids(follower, home, "Zanzibar", mode="bm25") == [ids[4]]
    async with unit_of_work(services.engine) as session:
        await bind_scope(session, workspace_id=home.tenant.workspace_id)
        edited = tx.TransactionDraft(
            account_id=home.account_id,
            date=DAY,
            amount=Decimal("-777.77"),
            category_id=home.category_ids["Groceries"],
            payee="Marrakesh Olive Traders",
        )
        await tx.edit(session, home.tenant, ids[4], edited, idempotency_key=uuid.uuid4().hex)
        await tx.remove(session, home.tenant, ids[2], idempotency_key=uuid.uuid4().hex)
    await _update(services, search, home, [ids[4], ids[2]])
    for engine in (search, follower):
        assert await _ids(engine, home, "Zanzibar", mode="bm25") == []
        assert await _ids(engine, home, "Marrakesh olive", mode="bm25") == [ids[4]]
        assert ids[2] not in await _ids(engine, home, "electricity bill", limit=50)
    assert (await _ids(search, home, "olive oil shop", mode="dense"))[0] == ids[4]
    assert await vectors.ids(home.tenant.workspace_id) == set(ids) - {ids[2]}


class OtherModel:
    def __init__(self, model_id: str, dimension: int) -> None:
        self.model_id = model_id
        self.dimension = dimension

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        return [[1.0] + [0.0] * (self.dimension - 1) for _ in texts]


@pytest.mark.parametrize(
    "other",
    [("openai/text-embedding-3-small@1536", 1536), ("sentence-transformers/all-MiniLM-L6-v2", 512)],
)
async def test_an_index_built_by_another_model_or_dimension_is_refused(
    vectors: VectorIndex, minilm: MiniLMEmbedder, other: tuple[str, int]
) -> None:
    await HybridSearch(minilm, vectors).start()
    with pytest.raises(IndexMismatch, match="all-MiniLM-L6-v2"):
        await HybridSearch(OtherModel(*other), vectors).start()


async def test_an_empty_workspace_or_query_finds_nothing(
    services: AppServices, search: HybridSearch
) -> None:
    home = await household(services.engine, services.keyring)
    for mode in ("fused", "bm25", "dense"):
        assert await _ids(search, home, "Swiggy", mode=mode) == []
    await _post(services, home, HOUSEHOLD_A[:1])
    await _index(services, search, home)
    assert await _ids(search, home, "   ") == []
