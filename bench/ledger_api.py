"""Ledger read paths over HTTP: GraphQL against a bare Starlette endpoint (the floor).

Builds a fresh workspace of N transactions (default 100,000) on SQLite and/or
PostgreSQL, serves `create_app()` with a real uvicorn server in a thread, adds two
bare routes to that same app which do the same domain work without GraphQL, then
times interleaved requests with one keep-alive httpx client.

    PYTHONPATH=. .venv/bin/python -m bench.ledger_api [--db sqlite|postgresql|both]
        [--transactions 100000] [--requests 200]

Results: a table per backend on stdout and bench/results/ledger_api-<backend>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn
from sqlalchemy import func, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.app import build_services, create_app
from bench.provenance import commit_id
from domain.audit.models import ActorKind, Outcome
from domain.audit.service import record_event
from domain.core.db import bind_scope, create_engine, session_for, unit_of_work
from domain.core.errors import DomainError, Unauthenticated
from domain.core.money import Money
from domain.core.settings import Settings
from domain.core.tenancy import Tenant
from domain.identity import service as identity
from domain.ledger.accounts import create_account
from domain.ledger.models import Posting, Transaction
from domain.ledger.reports import GroupBy, Period, spending_summary
from domain.ledger.repository import LedgerRepository
from domain.ledger.transactions import (
    SplitDraft,
    TransactionDraft,
    TransactionFilter,
    list_transactions,
    post_many,
)
from schema.context import AppServices, cursor_key
from schema.ids import decode_ids, encode_id
from schema.pagination import check_first, encode_cursor

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/"

# The data: three years ending on a fixed "today", so every run builds the same ledger.
TODAY = dt.date(2026, 11, 27)
FIRST_DAY = dt.date(2023, 11, 28)
CHUNK = 5_000  # transactions per post_many / unit_of_work

# The measured windows.
PAGE_WINDOW = (dt.date(2026, 5, 28), TODAY)  # six months, newest first
SUMMARY_MONTHS = (dt.date(2025, 11, 1), dt.date(2026, 10, 31))  # 12 whole months
SUMMARY_ROLLING = (dt.date(2025, 11, 28), TODAY)  # the last 12 months: partial edges
COMMON_CATEGORY = "Groceries"
RARE_CATEGORY = "Education"

# Targets (issue): at 100k transactions.
PAGE_P95_MS = 25.0
SUMMARY_MS = 100.0
MAX_RATIO = 1.5

ACCOUNTS: list[tuple[str, str, str]] = [  # name, kind, opening balance
    ("HDFC Salary", "checking", "85000"),
    ("SBI Joint", "checking", "42000"),
    ("ICICI Savings", "savings", "250000"),
    ("Kotak Deposit", "savings", "500000"),
    ("HDFC Regalia", "credit_card", "0"),
    ("Amazon Pay ICICI", "credit_card", "0"),
    ("Cash", "cash", "5000"),
    ("Paytm", "wallet", "1500"),
]
SPEND_ACCOUNTS = [0, 1, 4, 5, 6, 7]
SPEND_WEIGHTS = [18, 8, 30, 22, 12, 10]
INCOME_ACCOUNTS = [0, 1, 2, 3]
INCOME_WEIGHTS = [40, 20, 25, 15]

# Random (non-recurring) transactions: category, weight, typical amount in INR, sign.
MIX: list[tuple[str, float, int, int]] = [
    ("Groceries", 16, 1_200, -1),
    ("Dining out", 8, 900, -1),
    ("Food delivery", 9, 450, -1),
    ("Food", 1, 400, -1),
    ("Fuel", 6, 2_000, -1),
    ("Rides", 7, 300, -1),
    ("Public transport", 4, 60, -1),
    ("Transport", 0.5, 250, -1),
    ("Utilities", 3, 1_800, -1),
    ("Maintenance", 1, 2_500, -1),
    ("Clothing", 4, 2_200, -1),
    ("Electronics", 1.5, 8_000, -1),
    ("Household", 5, 700, -1),
    ("Shopping", 2, 1_500, -1),
    ("Software", 1, 900, -1),
    ("Pharmacy", 3, 500, -1),
    ("Doctor", 1, 1_200, -1),
    ("Fitness", 1, 1_500, -1),
    ("Education", 0.3, 15_000, -1),
    ("Travel", 2, 6_000, -1),
    ("Entertainment", 4, 800, -1),
    ("Fees & charges", 2, 150, -1),
    ("Gifts & donations", 1.5, 2_000, -1),
    ("Other expenses", 3, 600, -1),
    ("Interest", 0.5, 900, +1),
    ("Dividends", 0.5, 2_500, +1),
    ("Other income", 1, 3_000, +1),
]
# Monthly: category, day of month, typical amount, sign, account index.
RECURRING: list[tuple[str, int, int, int, int]] = [
    ("Salary", 1, 185_000, +1, 0),
    ("Rent", 3, 45_000, -1, 0),
    ("Phone & internet", 7, 1_299, -1, 4),
    ("Streaming", 12, 649, -1, 5),
    ("Insurance", 15, 3_800, -1, 1),
    ("Loan interest", 5, 9_400, -1, 1),
]
SPLIT_SHARE = 0.02  # supermarket runs split between groceries and household

PAYEES: dict[str, list[str]] = {
    "Groceries": ["BigBasket", "DMart", "Reliance Fresh", "More", "Nature's Basket", "Zepto"],
    "Dining out": ["Barbeque Nation", "Social", "Haldiram's", "Saravana Bhavan", "Starbucks"],
    "Food delivery": ["Swiggy", "Zomato", "EatSure"],
    "Fuel": ["Indian Oil", "HP Petrol", "Bharat Petroleum", "Shell"],
    "Rides": ["Uber", "Ola", "Rapido"],
    "Public transport": ["Metro card", "BEST", "IRCTC"],
    "Utilities": ["BESCOM", "Tata Power", "Indane Gas", "Water board"],
    "Clothing": ["Myntra", "Zara", "Uniqlo", "FabIndia", "Westside"],
    "Electronics": ["Croma", "Amazon", "Flipkart", "Reliance Digital"],
    "Household": ["IKEA", "Amazon", "Urban Company", "Pepperfry"],
    "Pharmacy": ["Apollo Pharmacy", "1mg", "MedPlus"],
    "Entertainment": ["BookMyShow", "PVR", "Steam"],
    "Travel": ["MakeMyTrip", "IndiGo", "Taj Hotels", "Airbnb"],
}


# --- building the ledger ---------------------------------------------------------------


@dataclass
class Fixture:
    token: str
    workspace_id: uuid.UUID
    transactions: int
    postings: int
    build_seconds: float
    database: dict[str, Any] = field(default_factory=dict)


def _amount(rng: random.Random, typical: int, sign: int) -> Decimal:
    value = max(1.0, typical * rng.lognormvariate(0, 0.6))
    return Decimal(f"{sign * value:.2f}")


def _payee(rng: random.Random, category: str) -> str:
    choices = PAYEES.get(category)
    if choices:
        return rng.choice(choices)
    return f"{category} {rng.randint(1, 6)}"


def _narration(rng: random.Random) -> str | None:
    roll = rng.random()
    if roll < 0.5:
        return None
    if roll < 0.8:
        return f"UPI/{rng.randrange(10**9):09d}"
    return rng.choice(["card", "weekly", "reimbursable", "online", "refund check"])


def make_drafts(
    count: int, accounts: list[uuid.UUID], categories: dict[str, uuid.UUID]
) -> list[TransactionDraft]:
    """`count` drafts over three years, oldest first; deterministic (random.Random(1))."""
    rng = random.Random(1)
    drafts: list[TransactionDraft] = []
    month = dt.date(FIRST_DAY.year, FIRST_DAY.month, 1)
    while month <= TODAY:
        for name, day, typical, sign, account in RECURRING:
            date = month.replace(day=day)
            if FIRST_DAY <= date <= TODAY and len(drafts) < count:
                drafts.append(
                    TransactionDraft(
                        account_id=accounts[account],
                        date=date,
                        amount=_amount(rng, typical, sign)
                        if name != "Salary"
                        else Decimal(typical),
                        category_id=categories[name],
                        payee=_payee(rng, name),
                        narration=f"{name} {date:%b %Y}",
                    )
                )
        month = (month + dt.timedelta(days=32)).replace(day=1)
    names = [name for name, *_ in MIX]
    weights = [weight for _, weight, *_ in MIX]
    spec = {name: (typical, sign) for name, _, typical, sign in MIX}
    days = (TODAY - FIRST_DAY).days + 1
    while len(drafts) < count:
        date = FIRST_DAY + dt.timedelta(days=rng.randrange(days))
        if rng.random() < SPLIT_SHARE:
            drafts.append(
                TransactionDraft(
                    account_id=accounts[rng.choices(SPEND_ACCOUNTS, SPEND_WEIGHTS)[0]],
                    date=date,
                    splits=(
                        SplitDraft(categories["Groceries"], _amount(rng, 1_500, -1)),
                        SplitDraft(categories["Household"], _amount(rng, 600, -1), memo="cleaning"),
                    ),
                    payee=rng.choice(PAYEES["Groceries"]),
                    narration=_narration(rng),
                )
            )
            continue
        name = rng.choices(names, weights)[0]
        typical, sign = spec[name]
        pool, pool_weights = (
            (SPEND_ACCOUNTS, SPEND_WEIGHTS) if sign < 0 else (INCOME_ACCOUNTS, INCOME_WEIGHTS)
        )
        drafts.append(
            TransactionDraft(
                account_id=accounts[rng.choices(pool, pool_weights)[0]],
                date=date,
                amount=_amount(rng, typical, sign),
                category_id=categories[name],
                payee=_payee(rng, name),
                narration=_narration(rng),
            )
        )
    drafts.sort(key=lambda draft: draft.date)  # imported in date order, as life happens
    return drafts


async def build(services: AppServices, settings: Settings, count: int) -> Fixture:
    """A user, a workspace with default categories, 8 INR accounts and `count` transactions."""
    engine, keyring = services.engine, services.keyring
    try:
        async with unit_of_work(engine) as session:
            await keyring.ensure_system_keys(session)
        async with unit_of_work(engine) as session:
            user = await identity.register(
                session,
                keyring,
                email="bench@example.com",
                password="benchmark-password",
                name="Bench Mark",
            )
            issued = await identity.start_session(
                session, services.signer, user.id, settings.refresh_token_days
            )
            tenant = await identity.open_tenant(session, keyring, user.id, None)
            workspace_id = tenant.workspace_id
            accounts = [
                (
                    await create_account(
                        session,
                        tenant,
                        name=name,
                        kind=kind,
                        currency="INR",
                        opening_balance=opening,
                        opening_date=FIRST_DAY,
                    )
                ).id
                for name, kind, opening in ACCOUNTS
            ]
            rows = await LedgerRepository(session, workspace_id).categories()
            categories = {row.name: row.id for row in rows}
        drafts = make_drafts(count, accounts, categories)
        started = time.perf_counter()
        for start in range(0, len(drafts), CHUNK):
            async with unit_of_work(engine) as session:
                await bind_scope(session, workspace_id=workspace_id)
                await post_many(session, tenant, drafts[start : start + CHUNK])
            done = min(start + CHUNK, len(drafts))
            if done % 20_000 == 0 or done == len(drafts):
                rate = done / (time.perf_counter() - started)
                print(f"  {done:>9,} transactions ({rate:,.0f}/s)", flush=True)
        build_seconds = time.perf_counter() - started
        database = await _database_info(services, workspace_id)
        return Fixture(
            token=issued.access_token,
            workspace_id=workspace_id,
            transactions=database.pop("transactions"),
            postings=database.pop("postings"),
            build_seconds=build_seconds,
            database=database,
        )
    finally:
        # The server runs on another event loop: no pooled connection may outlive this one.
        await engine.dispose()


async def _database_info(services: AppServices, workspace_id: uuid.UUID) -> dict[str, Any]:
    # As the tables' owner: ANALYZE needs it, and the API's role sees no row unscoped.
    engine = create_engine(services.settings, owner=True)
    info: dict[str, Any] = {"dialect": engine.dialect.name}
    async with engine.connect() as connection:
        for column, key in (
            (col(Transaction.workspace_id), "transactions"),
            (col(Posting.workspace_id), "postings"),
        ):
            info[key] = (
                await connection.execute(select(func.count()).where(column == workspace_id))
            ).scalar_one()
        if engine.dialect.name == "postgresql":
            # Autovacuum would analyze after a bulk load like this; do it now, deterministically.
            await connection.execute(text("ANALYZE"))
            info["version"] = (await connection.execute(text("SHOW server_version"))).scalar_one()
            info["size_mb"] = round(
                (
                    await connection.execute(text("SELECT pg_database_size(current_database())"))
                ).scalar_one()
                / 2**20,
                1,
            )
            await connection.commit()
        else:
            info["version"] = (
                await connection.execute(text("SELECT sqlite_version()"))
            ).scalar_one()
            info["analyzed"] = False  # the app never runs ANALYZE on SQLite; neither do we
    await engine.dispose()
    return info


# --- the floor: the same domain work, no GraphQL ---------------------------------------


def _money(money: Money) -> dict[str, str]:
    return {"amount": str(money.amount), "currency": money.currency}


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


async def _audit_read(
    services: AppServices, request: Request, tenant: Tenant, ids: list[uuid.UUID]
) -> None:
    async with unit_of_work(services.engine) as session:
        await bind_scope(session, workspace_id=tenant.workspace_id)
        await record_event(
            session,
            services.keyring,
            workspace_id=tenant.workspace_id,
            action="read.transactions",
            outcome=Outcome.OK,
            actor_id=tenant.user_id,
            actor_kind=ActorKind.USER,
            target_ids=[encode_id("Transaction", i) for i in ids],
            request_id=None,
            ip=request.client.host if request.client else None,
        )


def bare_routes(services: AppServices) -> list[Route]:
    """Bare Starlette endpoints: same auth, tenant, session and domain calls as the resolvers."""

    async def respond(
        request: Request,
        work: Callable[[AsyncSession, Tenant], Awaitable[dict[str, Any]]],
        reads: list[uuid.UUID] | None = None,
    ) -> Response:
        session = session_for(services.engine, write=False)
        try:
            header = request.headers.get("authorization", "")
            token = header[7:].strip() if header.lower().startswith("bearer ") else ""
            if not token:
                raise Unauthenticated("Sign in first")
            # Exactly what the GraphQL context does: the caller's first workspace.
            _auth, tenant = await identity.resolve_access_and_tenant(
                session, services.signer, services.keyring, token, None
            )
            data = await work(session, tenant)
            await session.commit()
            if reads is not None:
                # As the GraphQL resolvers do: the read is audited in a transaction of its
                # own before the response goes out (the bare side does the same domain work).
                await _audit_read(services, request, tenant, reads)
        except DomainError as error:
            await session.rollback()
            return JSONResponse(
                {
                    "data": None,
                    "errors": [{"message": error.message, "extensions": error.extensions()}],
                }
            )
        finally:
            await session.close()
        return JSONResponse({"data": data})

    async def transactions(request: Request) -> Response:
        params = request.query_params
        read: list[uuid.UUID] = []

        async def work(session: AsyncSession, tenant: Tenant) -> dict[str, Any]:
            first = check_first(int(params["first"]) if "first" in params else None)
            flt = TransactionFilter(
                category_ids=decode_ids(
                    params.getlist("categoryId"), "Category", field="categoryIds"
                ),
                date_from=_date(params.get("dateFrom")),
                date_to=_date(params.get("dateTo")),
            )
            page = await list_transactions(session, tenant, flt, first=first)
            read.extend(item.id for item in page.items)
            key = await cursor_key(session, services.keyring)
            edges = [
                {
                    "cursor": encode_cursor(key, tenant.workspace_id, (item.date, item.id)),
                    "node": {
                        "id": encode_id("Transaction", item.id),
                        "date": item.date.isoformat(),
                        "payee": item.payee,
                        "amount": _money(item.amount),
                    },
                }
                for item in page.items
            ]
            return {
                "transactions": {
                    "edges": edges,
                    "pageInfo": {
                        "hasNextPage": page.has_next_page,
                        "endCursor": edges[-1]["cursor"] if edges else None,
                    },
                }
            }

        return await respond(request, work, read)

    async def summary(request: Request) -> Response:
        params = request.query_params

        async def work(session: AsyncSession, tenant: Tenant) -> dict[str, Any]:
            period = Period(
                dt.date.fromisoformat(params["start"]), dt.date.fromisoformat(params["end"])
            )
            group_by = GroupBy(params.get("groupBy", "category").lower())
            found = await spending_summary(session, tenant, period, group_by)
            return {
                "spendingSummary": {
                    "total": _money(found.total),
                    "rows": [
                        {
                            "label": row.label,
                            "amount": _money(row.amount),
                            "postingCount": row.postings,
                        }
                        for row in found.rows
                    ],
                }
            }

        return await respond(request, work)

    return [
        Route("/bare/transactions", transactions, methods=["GET"]),
        Route("/bare/spending-summary", summary, methods=["GET"]),
    ]


def build_app(settings: Settings, services: AppServices) -> Starlette:
    app = create_app(settings, services)
    for route in reversed(bare_routes(services)):
        app.router.routes.insert(0, route)  # before the static files mounted at "/"
    return app


# --- serving ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def app_from_env() -> Starlette:
    """The served app in a server process: settings from WEALTHWISE_* like `serve`."""
    settings = Settings()
    return build_app(settings, build_services(settings))


# One user sends every request of the run: budgets it cannot spend (the limiter still runs,
# so its cost is in the numbers).
ROOMY_RATE_LIMITS = {
    "rate_limit_cost_per_minute": 100_000_000,
    "rate_limit_cost_burst": 100_000_000,
    "rate_limit_ip_cost_per_minute": 100_000_000,
    "rate_limit_ip_cost_burst": 100_000_000,
}


@contextmanager
def serve_process(settings: Settings) -> Iterator[tuple[str, dict[str, str]]]:
    """A real uvicorn server in its own process (its own GIL, as in production), on a
    free port, with the benchmark's settings passed through the environment."""
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "WEALTHWISE_DATA_DIR": str(settings.data_dir),
        "WEALTHWISE_LOG_LEVEL": "WARNING",
        "WEALTHWISE_GRAPHIQL": "false",
        "WEALTHWISE_ACCESS_TOKEN_MINUTES": str(settings.access_token_minutes),
        **{f"WEALTHWISE_{name.upper()}": str(value) for name, value in ROOMY_RATE_LIMITS.items()},
    }
    if settings.database_url:
        env["WEALTHWISE_DATABASE_URL"] = settings.database_url
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.ledger_api:app_from_env",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            try:
                if httpx.get(f"{base_url}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base_url, {"server": "uvicorn process", "loop": "auto", "http": "auto"}
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def serve(app: Starlette) -> Iterator[tuple[str, dict[str, str]]]:
    """A real uvicorn server on a free port, in a thread with its own event loop."""
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    loop = type(server.servers[0].get_loop()) if server.servers else None
    http = getattr(config, "http_protocol_class", None)
    described = {
        "loop": f"{loop.__module__}.{loop.__qualname__}" if loop else str(config.loop),
        "http": f"{http.__module__}.{http.__qualname__}" if http else str(config.http),
    }
    try:
        yield f"http://127.0.0.1:{port}", described
    finally:
        server.should_exit = True
        thread.join(timeout=30)


# --- measuring -------------------------------------------------------------------------

PAGE_QUERY = """
query Page($first: Int!, $filter: TransactionFilter) {
  transactions(first: $first, filter: $filter) {
    edges { cursor node { id date payee amount { amount currency } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
SUMMARY_QUERY = """
query Summary($period: PeriodInput!, $groupBy: SummaryGroupBy!) {
  spendingSummary(period: $period, groupBy: $groupBy) {
    total { amount currency }
    rows { label amount { amount currency } postingCount }
  }
}
"""
CATEGORIES_QUERY = "query { categories { id name } }"


@dataclass(frozen=True)
class Call:
    """One HTTP request, repeatable."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    body: dict[str, Any] | None = None

    def send(self, client: httpx.Client) -> httpx.Response:
        return client.request(self.method, self.path, params=self.params, json=self.body)

    def timed(self, client: httpx.Client) -> float:
        started = time.perf_counter()
        response = self.send(client)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200 or b'"errors"' in response.content:
            raise RuntimeError(f"{self.path}: {response.status_code} {response.text[:500]}")
        return elapsed


def graphql(query: str, variables: dict[str, Any]) -> Call:
    return Call("POST", "/graphql", body={"query": query, "variables": variables})


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    graphql: Call
    bare: Call
    target_ms: float | None  # on the GraphQL p95; None: for information
    requests: int


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, -(-int(q * len(ordered) * 1000) // 1000))  # ceil(q * n), float-safe
    return ordered[min(rank, len(ordered)) - 1]


def stats(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50": round(percentile(samples, 0.50), 2),
        "p95": round(percentile(samples, 0.95), 2),
        "p99": round(percentile(samples, 0.99), 2),
        "mean": round(sum(samples) / len(samples), 2),
        "min": round(min(samples), 2),
        "max": round(max(samples), 2),
    }


def run_case(client: httpx.Client, case: Case, warmup: int) -> dict[str, Any]:
    """Parity check, warm-up, then GraphQL and bare alternately (the order flips each round)."""
    expected = case.graphql.send(client).json()
    expected.pop("extensions", None)  # the operation's cost: GraphQL's own, not the domain's
    actual = case.bare.send(client).json()
    if expected != actual:
        raise RuntimeError(f"{case.name}: the bare endpoint's answer differs from GraphQL's")
    for _ in range(warmup):
        case.graphql.timed(client)
        case.bare.timed(client)
    times: dict[str, list[float]] = {"graphql": [], "bare": []}
    for round_ in range(case.requests):
        order = ("graphql", "bare") if round_ % 2 == 0 else ("bare", "graphql")
        for side in order:
            times[side].append(getattr(case, side).timed(client))
    graphql_stats, bare_stats = stats(times["graphql"]), stats(times["bare"])
    ratio_p50 = round(graphql_stats["p50"] / bare_stats["p50"], 2)
    ratio_p95 = round(graphql_stats["p95"] / bare_stats["p95"], 2)
    result: dict[str, Any] = {
        "description": case.description,
        "graphql": graphql_stats,
        "bare": bare_stats,
        "ratio_p50": ratio_p50,
        "ratio_p95": ratio_p95,
        "response_bytes": len(case.graphql.send(client).content),
        "target_ms": case.target_ms,
    }
    if case.target_ms is not None:
        result["latency_met"] = graphql_stats["p95"] <= case.target_ms
        result["ratio_met"] = ratio_p50 <= MAX_RATIO and ratio_p95 <= MAX_RATIO
    return result


def make_cases(categories: dict[str, str], requests: int, payee_requests: int) -> list[Case]:
    def page(name: str, category: str, target: float | None, description: str) -> Case:
        start, end = PAGE_WINDOW
        return Case(
            name,
            description,
            graphql(
                PAGE_QUERY,
                {
                    "first": 20,
                    "filter": {
                        "dateFrom": start.isoformat(),
                        "dateTo": end.isoformat(),
                        "categoryIds": [categories[category]],
                    },
                },
            ),
            Call(
                "GET",
                "/bare/transactions",
                params={
                    "first": 20,
                    "dateFrom": start.isoformat(),
                    "dateTo": end.isoformat(),
                    "categoryId": categories[category],
                },
            ),
            target,
            requests,
        )

    def summary(
        name: str,
        window: tuple[dt.date, dt.date],
        group_by: str,
        target: float | None,
        count: int,
        description: str,
    ) -> Case:
        start, end = (day.isoformat() for day in window)
        return Case(
            name,
            description,
            graphql(SUMMARY_QUERY, {"period": {"start": start, "end": end}, "groupBy": group_by}),
            Call(
                "GET",
                "/bare/spending-summary",
                params={"start": start, "end": end, "groupBy": group_by.lower()},
            ),
            target,
            count,
        )

    months, rolling = SUMMARY_MONTHS, SUMMARY_ROLLING
    return [
        page(
            "transactions_page",
            COMMON_CATEGORY,
            PAGE_P95_MS,
            f"transactions(first: 20), {COMMON_CATEGORY}, {PAGE_WINDOW[0]}..{PAGE_WINDOW[1]}",
        ),
        summary(
            "summary_12m",
            months,
            "CATEGORY",
            SUMMARY_MS,
            requests,
            f"spendingSummary CATEGORY, 12 whole months {months[0]}..{months[1]}",
        ),
        page(
            "transactions_page_rare",
            RARE_CATEGORY,
            None,
            f"as transactions_page, rare category {RARE_CATEGORY} (info)",
        ),
        summary(
            "summary_12m_rolling",
            rolling,
            "CATEGORY",
            None,
            requests,
            f"spendingSummary CATEGORY, {rolling[0]}..{rolling[1]}: partial edge months (info)",
        ),
        summary(
            "summary_12m_payee",
            months,
            "PAYEE",
            None,
            payee_requests,
            "spendingSummary PAYEE, 12 whole months: decrypts every posting (info)",
        ),
    ]


def measure(base_url: str, fixture: Fixture, args: argparse.Namespace) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {fixture.token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:
        answer = graphql(CATEGORIES_QUERY, {}).send(client).json()
        categories = {row["name"]: row["id"] for row in answer["data"]["categories"]}
        results: dict[str, Any] = {}
        for case in make_cases(categories, args.requests, args.payee_requests):
            if args.cases and case.name not in args.cases:
                continue
            print(f"  {case.name}: {case.requests} x 2 requests", flush=True)
            try:
                load_before = round(os.getloadavg()[0], 2)
                results[case.name] = run_case(
                    client, case, args.warmup if case.requests > 10 else 1
                )
                load_after = round(os.getloadavg()[0], 2)
                results[case.name]["load_average"] = [load_before, load_after]
            except Exception as error:  # report it, measure the rest
                results[case.name] = {"description": case.description, "error": str(error)[:800]}
                print(f"    failed: {str(error)[:300]}", flush=True)
        return results


# --- the run ---------------------------------------------------------------------------


async def _create_pg_database(admin: URL) -> str:
    name = f"wealthwise_bench_{secrets.token_hex(4)}"
    connection = await _pg_admin(admin)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return name


async def _drop_pg_database(admin: URL, name: str) -> None:
    connection = await _pg_admin(admin)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def _pg_admin(admin: URL) -> asyncpg.Connection:
    return await asyncpg.connect(
        host=admin.host or "127.0.0.1",
        port=admin.port or 5432,
        user=admin.username or "postgres",
        password=admin.password,
        database="postgres",
        timeout=10,
    )


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n== {backend}: building {args.transactions:,} transactions", flush=True)
    admin = make_url(args.pg_url)
    scratch: str | None = None
    with tempfile.TemporaryDirectory(prefix="wealthwise-bench-") as data_dir:
        try:
            url = None
            if backend == "postgresql":
                scratch = asyncio.run(_create_pg_database(admin))
                url = admin.set(database=scratch).render_as_string(hide_password=False)
            settings = Settings(
                data_dir=Path(data_dir),
                database_url=url,
                log_level="WARNING",
                graphiql=False,
                access_token_minutes=24 * 60,  # outlives any run
            ).model_copy(update=ROOMY_RATE_LIMITS)
            started = time.perf_counter()
            from domain.core.migrate import upgrade

            upgrade(settings)
            migrate_seconds = time.perf_counter() - started
            services = build_services(settings)
            fixture = asyncio.run(build(services, settings, args.transactions))
            if settings.is_sqlite:
                files = Path(data_dir).glob("wealthwise.db*")
                fixture.database["size_mb"] = round(sum(f.stat().st_size for f in files) / 2**20, 1)
            print(
                f"  built {fixture.transactions:,} transactions / {fixture.postings:,} postings "
                f"in {fixture.build_seconds:.1f} s "
                f"({fixture.transactions / fixture.build_seconds:,.0f}/s)",
                flush=True,
            )
            server_context = (
                serve(build_app(settings, services))
                if args.server == "thread"
                else serve_process(settings)
            )
            with server_context as (base_url, server):
                cases = measure(base_url, fixture, args)
        finally:
            if scratch is not None:
                asyncio.run(_drop_pg_database(admin, scratch))
    return {
        "backend": backend,
        "date": dt.date.today().isoformat(),
        "transactions": fixture.transactions,
        "postings": fixture.postings,
        "build_seconds": round(fixture.build_seconds, 1),
        "migrate_seconds": round(migrate_seconds, 1),
        "database": fixture.database,
        "server": {"uvicorn": uvicorn.__version__, **server},
        "requests_per_case": args.requests,
        "warmup": args.warmup,
        "targets": {"page_p95_ms": PAGE_P95_MS, "summary_ms": SUMMARY_MS, "max_ratio": MAX_RATIO},
        "machine": machine(),
        "commit": args.commit,
        "cases": cases,
    }


def machine() -> dict[str, Any]:
    cpu = "unknown"
    memory_gb = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gb = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": memory_gb,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def _cell(side: dict[str, float]) -> str:
    return f"{side['p50']:7.2f} {side['p95']:7.2f} {side['p99']:7.2f}"


def print_table(result: dict[str, Any]) -> None:
    database = result["database"]
    print(
        f"\n{result['backend']} {database.get('version', '')}: {result['transactions']:,} "
        f"transactions, {result['postings']:,} postings, built in {result['build_seconds']} s; "
        f"{result['requests_per_case']} requests per side, interleaved; commit {result['commit']}"
    )
    header = (
        f"{'case':<24} {'GraphQL p50    p95     p99':>25}   {'bare p50    p95     p99':>23}"
        f"   {'ratio p50  p95':>14}  target"
    )
    print(header)
    print("-" * len(header))
    for name, case in result["cases"].items():
        if "error" in case:
            print(f"{name:<24} error: {case['error'][:120]}")
            continue
        verdict = ""
        if case["target_ms"] is not None:
            latency = "ok" if case["latency_met"] else "MISSED"
            ratio = "ok" if case["ratio_met"] else "MISSED"
            verdict = f"p95<={case['target_ms']:.0f}ms {latency}; <={MAX_RATIO}x {ratio}"
        print(
            f"{name:<24} {_cell(case['graphql']):>25}   {_cell(case['bare']):>23}"
            f"   {case['ratio_p50']:>9.2f} {case['ratio_p95']:>4.2f}  {verdict}"
            f"  (load {case['load_average'][0]:.1f}-{case['load_average'][1]:.1f})"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--server",
        choices=["process", "thread"],
        default="process",
        help="uvicorn in its own process (default) or in a thread of the client's process",
    )
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per side")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests per side")
    parser.add_argument("--payee-requests", type=int, default=5)
    parser.add_argument(
        "--cases", nargs="*", default=None, help="only these cases (default: all); see make_cases"
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL),
        help="admin URL of the server where the scratch database is created",
    )
    args = parser.parse_args(argv)
    args.commit = commit_id()  # the code this process imported: the tree may change under a run
    backends = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    RESULTS_DIR.mkdir(exist_ok=True)
    for backend in backends:
        result = run_backend(backend, args)
        print_table(result)
        path = RESULTS_DIR / f"ledger_api-{backend}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"  written to {path}")


if __name__ == "__main__":
    main()
