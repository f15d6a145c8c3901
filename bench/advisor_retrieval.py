"""Hybrid retrieval over the demo household: quality, latency at 100k, indexing speed.

    PYTHONPATH=. .venv/bin/python -m bench.advisor_retrieval [--size 100000] [--runs 200]

1. Quality: a labelled query set over the demo data (`domain.demo`'s generator, the same
   36 months the demo seeds): exact payee names, misspellings, and queries by meaning.
   Prints recall@10 for BM25 alone, dense alone (MiniLM + Qdrant Edge) and fused (RRF),
   per kind of query. recall@10 = relevant found in the top 10 / min(10, relevant).
2. Latency at `--size` transactions in one workspace (plus 5,000 in another, so the
   workspace filter has work to do): p50/p95 of BM25 with rank-bm25 and with bm25s (the
   baseline and its ratio), dense, and the fused `search()` with a fresh query embedding,
   with and without a date filter.
3. Indexing throughput with the local model, cold cache: transactions/s for the demo
   household, against the model's raw texts/s measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from domain import demo
from domain.advisor.embeddings import CachedEmbedder
from domain.advisor.embeddings.minilm import MiniLMEmbedder
from domain.advisor.retrieval.bm25 import WorkspaceBM25
from domain.advisor.retrieval.documents import TransactionDocument
from domain.advisor.retrieval.port import SearchFilter, day_number
from domain.advisor.retrieval.service import HybridSearch, Mode
from domain.advisor.retrieval.vectors import EdgeVectorIndex
from domain.ledger.transactions import TransactionDraft, TransferDraft

ANCHOR = date(2026, 11, 30)
WORKSPACE = uuid.UUID(int=1)
NEIGHBOUR = uuid.UUID(int=2)


@dataclass(frozen=True)
class Labelled:
    kind: str  # "payee", "misspelling" or "meaning"
    query: str
    relevant: Callable[[TransactionDocument, str], bool]  # (document, category name)


def _payee(*names: str) -> Callable[[TransactionDocument, str], bool]:
    return lambda doc, _cat: any(doc.text.startswith(name) for name in names)


def _category(*names: str) -> Callable[[TransactionDocument, str], bool]:
    return lambda _doc, cat: cat in names


def _text(*needles: str) -> Callable[[TransactionDocument, str], bool]:
    return lambda doc, _cat: any(n.casefold() in doc.text.casefold() for n in needles)


QUERIES = (
    Labelled("payee", "Swiggy", _payee("Swiggy")),
    Labelled("payee", "Third Wave Coffee", _payee("Third Wave Coffee")),
    Labelled("payee", "BESCOM", _payee("BESCOM")),
    Labelled("payee", "Country Delight", _payee("Country Delight")),
    Labelled("payee", "Apollo Pharmacy", _payee("Apollo Pharmacy")),
    Labelled("payee", "Greenwood High School", _payee("Greenwood High School")),
    Labelled("payee", "Cult.fit", _payee("Cult.fit")),
    Labelled("payee", "BookMyShow", _payee("BookMyShow")),
    Labelled("misspelling", "Swigy", _payee("Swiggy")),
    Labelled("misspelling", "Zomatto", _payee("Zomato")),
    Labelled("misspelling", "Netflx", _payee("Netflix")),
    Labelled("misspelling", "Starbuks", _payee("Starbucks")),
    Labelled("misspelling", "Big Basket", _payee("BigBasket")),
    Labelled("misspelling", "Bookmyshow tickts", _payee("BookMyShow")),
    Labelled("misspelling", "Apolo pharmacy", _payee("Apollo Pharmacy")),
    Labelled("misspelling", "Meghna foods", _payee("Meghana Foods")),
    Labelled("meaning", "food delivery", _category("Food delivery")),
    Labelled("meaning", "rides to the airport", _text("airport")),
    Labelled("meaning", "taxi", _category("Rides")),
    Labelled("meaning", "movie tickets", _payee("BookMyShow")),
    Labelled("meaning", "electricity bill", _text("electricity")),
    Labelled("meaning", "school fees", _payee("Greenwood High School")),
    Labelled("meaning", "medicines", _category("Pharmacy")),
    Labelled("meaning", "flights", _text("flight")),
    Labelled("meaning", "gym membership", _category("Fitness")),
    Labelled("meaning", "internet bill", _payee("Jio Fiber", "Airtel")),
    Labelled("meaning", "cooking gas cylinder", _payee("Indane Gas")),
    Labelled("meaning", "charity donation", _payee("GiveIndia", "Akshaya Patra Foundation")),
    Labelled("meaning", "hotel stay", _text("hotel")),
)


def demo_documents(
    workspace_id: uuid.UUID = WORKSPACE,
) -> tuple[list[TransactionDocument], dict[uuid.UUID, str]]:
    """The demo household's transactions as the indexer would see them (no database:
    the generator's drafts, with the text the ledger would decrypt)."""
    accounts = {spec.key: uuid.uuid4() for spec in demo.ACCOUNTS}
    categories = {name: uuid.uuid4() for name in demo._CATEGORIES}
    names = {cid: name for name, cid in categories.items()}
    drafts, _rates = demo._plan(ANCHOR, accounts, categories)
    documents, category_of = [], {}
    for draft in drafts:
        category = _category_of(draft)
        doc = TransactionDocument(
            transaction_id=uuid.uuid4(),
            workspace_id=workspace_id,
            date=day_number(draft.date),
            account_ids=tuple(sorted(_accounts_of(draft))),
            category_ids=(str(category),) if category else (),
            text=" ".join(
                dict.fromkeys(p for p in (draft.payee, draft.narration, draft.notes) if p)
            ),
        )
        documents.append(doc)
        category_of[doc.transaction_id] = names.get(category, "") if category else ""
    return documents, category_of


def _category_of(draft: TransactionDraft | TransferDraft) -> uuid.UUID | None:
    if isinstance(draft, TransactionDraft):
        return draft.category_id or (draft.splits[0].category_id if draft.splits else None)
    return None


def _accounts_of(draft: TransactionDraft | TransferDraft) -> set[str]:
    if isinstance(draft, TransactionDraft):
        return {str(draft.account_id)}
    return {str(draft.from_account_id), str(draft.to_account_id)}


def _recall(found: Sequence[uuid.UUID], relevant: set[uuid.UUID]) -> float:
    if not relevant:
        raise ValueError("a labelled query with no relevant transaction")
    return len(set(found[:10]) & relevant) / min(10, len(relevant))


async def quality(search: HybridSearch, docs: list[TransactionDocument], cats: dict) -> None:
    modes: tuple[Mode, ...] = ("bm25", "dense", "fused")
    by_kind: dict[tuple[str, str], list[float]] = {}
    print("\n1. Quality over the demo household: recall@10")
    print(f"   {'query':<28}{'relevant':>9}" + "".join(f"{m:>8}" for m in modes))
    for item in QUERIES:
        relevant = {d.transaction_id for d in docs if item.relevant(d, cats[d.transaction_id])}
        row = []
        for mode in modes:
            hits = await search.search(WORKSPACE, item.query, limit=10, mode=mode)
            value = _recall([h.transaction_id for h in hits], relevant)
            by_kind.setdefault((item.kind, mode), []).append(value)
            by_kind.setdefault(("all", mode), []).append(value)
            row.append(value)
        print(f"   {item.query:<28}{len(relevant):>9}" + "".join(f"{v:>8.2f}" for v in row))
    print(f"\n   {'mean by kind':<28}{'queries':>9}" + "".join(f"{m:>8}" for m in modes))
    for kind in ("payee", "misspelling", "meaning", "all"):
        values = [statistics.fmean(by_kind[(kind, mode)]) for mode in modes]
        count = len(by_kind[(kind, "fused")])
        print(f"   {kind:<28}{count:>9}" + "".join(f"{v:>8.3f}" for v in values))


def scaled(docs: list[TransactionDocument], size: int, workspace: uuid.UUID) -> list:
    """`size` transactions: the demo's texts and filters, ids fresh, dates spread over
    nine years, UPI references redrawn (so the texts are as varied as real ones)."""
    rng = random.Random(7)
    out = []
    for i in range(size):
        base = docs[i % len(docs)]
        text = base.text
        if "UPI/" in text:
            text = text.replace(text.split("/")[2], str(rng.randint(4 * 10**11, 5 * 10**11 - 1)))
        year_shift = (i // len(docs)) % 9
        out.append(
            replace(
                base,
                transaction_id=uuid.uuid4(),
                workspace_id=workspace,
                date=base.date - year_shift * 10_000,
                text=text,
            )
        )
    return out


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = ordered[len(ordered) // 2] * 1000
    p95 = ordered[int(len(ordered) * 0.95) - 1] * 1000
    return f"p50 {p50:7.2f} ms   p95 {p95:7.2f} ms"


async def _time(call: Callable[[str], Awaitable[object]], runs: int) -> list[float]:
    samples = []
    for i in range(runs):
        query = f"{QUERIES[i % len(QUERIES)].query} {i}"  # a fresh query: no cached vector
        started = time.perf_counter()
        await call(query)
        samples.append(time.perf_counter() - started)
    return samples


async def latency(minilm: MiniLMEmbedder, docs: list, size: int, runs: int, path: Path) -> None:
    print(f"\n2. Latency at {size:,} transactions in one workspace (+5,000 in another)")
    big = scaled(docs, size, WORKSPACE)
    neighbour = scaled(docs, 5_000, NEIGHBOUR)
    cache = CachedEmbedder(minilm, b"bench" * 8)
    search = HybridSearch(cache, EdgeVectorIndex(path / "latency"))
    await search.start()
    started = time.perf_counter()
    await search.index_documents(WORKSPACE, big)
    await search.index_documents(NEIGHBOUR, neighbour)
    indexed = time.perf_counter() - started
    started = time.perf_counter()
    await search.vectors.optimize()  # what `wealthwise advisor reindex` ends with
    print(
        f"   indexed {size + 5000:,} in {indexed:.1f} s ({cache.embedded:,} distinct texts "
        f"embedded), then Edge's optimize (HNSW) in {time.perf_counter() - started:.1f} s"
    )
    search.embedder = minilm  # queries: embedded afresh every time, as a user's would be
    results: dict[str, list[float]] = {}
    for engine in ("rank_bm25", "bm25s"):
        index = WorkspaceBM25(engine)
        started = time.perf_counter()
        index.upsert(big)
        index.snapshot()
        built = time.perf_counter() - started

        async def bm25(query: str, index: WorkspaceBM25 = index) -> object:
            return index.search(query, 50, SearchFilter())

        results[engine] = await _time(bm25, runs)
        print(f"   BM25 {engine:<10} {_percentiles(results[engine])}   (build {built:.2f} s)")
    ratio = statistics.median(results["rank_bm25"]) / statistics.median(results["bm25s"])
    print(f"   rank-bm25 / bm25s median ratio: {ratio:.1f}x")

    async def dense(query: str) -> object:
        return await search.dense_hits(WORKSPACE, query, 50, SearchFilter())

    async def fused(query: str) -> object:
        return await search.search(WORKSPACE, query, limit=10)

    async def fused_dated(query: str) -> object:
        return await search.search(
            WORKSPACE, query, limit=10, start=date(2025, 1, 1), end=date(2025, 12, 31)
        )

    async def embed_only(query: str) -> object:
        return await minilm.embed([query])

    await fused("warm up")
    for name, call in (
        ("query embedding", embed_only),
        ("dense (embed+Edge)", dense),
        ("fused search()", fused),
        ("fused, 1 year", fused_dated),
    ):
        results[name] = await _time(call, runs)
        print(f"   {name:<21}{_percentiles(results[name])}")
    await search.close()


async def throughput(docs: list, path: Path) -> None:
    print("\n3. Indexing throughput, local model, cold cache (the demo household)")
    model = MiniLMEmbedder()
    model.model()
    texts = sorted({d.text for d in docs})[:500]
    started = time.perf_counter()
    await model.embed(texts)
    raw = len(texts) / (time.perf_counter() - started)
    print(f"   baseline: the model alone, distinct raw texts      {raw:8.0f} texts/s")
    cache = CachedEmbedder(model, b"cold" * 8)
    search = HybridSearch(cache, EdgeVectorIndex(path / "throughput"))
    await search.start()
    started = time.perf_counter()
    await search.index_documents(WORKSPACE, docs)
    rate = len(docs) / (time.perf_counter() - started)
    print(
        f"   index_documents ({len(docs):,} tx, {cache.embedded} distinct texts) "
        f"{rate:8.0f} transactions/s  ({rate / raw:.1f}x the model's text rate)"
    )
    await search.close()


async def run(size: int, runs: int) -> None:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"load average before the run: {load} on {os.cpu_count()} CPUs (absolute times vary)")
    docs, cats = demo_documents()
    print(f"demo household: {len(docs):,} transactions, {len(QUERIES)} labelled queries")
    minilm = MiniLMEmbedder()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        search = HybridSearch(CachedEmbedder(minilm, b"q" * 32), EdgeVectorIndex(path / "q"))
        await search.start()
        await search.index_documents(WORKSPACE, docs)
        await quality(search, docs, cats)
        await search.close()
        await throughput(docs, path)
        await latency(minilm, docs, size, runs, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args(argv)
    asyncio.run(run(args.size, args.runs))


if __name__ == "__main__":
    main()
