"""The advisor's ledger tools against the period reports they build on.

    PYTHONPATH=. .venv/bin/python -m bench.advisor_tools                 # SQLite, 100k
    PYTHONPATH=. .venv/bin/python -m bench.advisor_tools --transactions 20000 --repeat 5

Builds the same ledger as bench.ledger_api (three years, 8 INR accounts, deterministic) in a
temporary SQLite database, then times each tool in-process next to its baseline: the report
of domain/ledger/reports.py over the same period (12 whole months), which reads the month
totals. The tools read the same month totals when no payee or account narrows the
postings, but they also name every transaction behind their figures (an id-only posting
query); with a payee or account filter, or grouped by payee, they scan and decrypt every
posting of the period, as the payee report does. The ratio tool/report is that price.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from api.app import build_services
from bench.ledger_api import ROOMY_RATE_LIMITS, build
from domain.advisor.tools import ToolContext, run_tool
from domain.core.crypto import blind_index
from domain.core.db import bind_scope, create_engine, unit_of_work
from domain.core.migrate import upgrade
from domain.core.settings import Settings
from domain.identity import service as identity
from domain.identity.repository import IdentityRepository
from domain.ledger import reports

TODAY = dt.date(2026, 11, 27)  # bench.ledger_api's last day
YEAR = reports.Period(dt.date(2025, 11, 1), dt.date(2026, 10, 31))
Timed = Callable[[ToolContext], Awaitable[Any]]


def _cases() -> list[tuple[str, Timed, Timed | None]]:
    span = {"start": YEAR.start.isoformat(), "end": YEAR.end.isoformat()}

    def tool(name: str, arguments: dict[str, Any]) -> Timed:
        async def call(ctx: ToolContext) -> Any:
            return await run_tool(ctx, name, arguments)

        return call

    def summary(group_by: reports.GroupBy) -> Timed:
        async def call(ctx: ToolContext) -> Any:
            return await reports.spending_summary(ctx.session, ctx.tenant, YEAR, group_by)

        return call

    async def cashflow(ctx: ToolContext) -> Any:
        return await reports.cashflow(ctx.session, ctx.tenant, YEAR)

    async def net_worth(ctx: ToolContext) -> Any:
        return await reports.net_worth(ctx.session, ctx.tenant, months=12, today=TODAY)

    october = reports.Period(dt.date(2026, 10, 1), dt.date(2026, 10, 31))

    async def october_summary(ctx: ToolContext) -> Any:
        return await reports.spending_summary(
            ctx.session, ctx.tenant, october, reports.GroupBy.CATEGORY
        )

    groceries = {"start": "2026-10-01", "end": "2026-10-31", "categories": ["Groceries"]}
    return [
        ("spending on Groceries, one month", tool("spending", groceries), october_summary),
        (
            "spending by category, 12 months",
            tool("spending", span),
            summary(reports.GroupBy.CATEGORY),
        ),
        (
            "spending by payee, 12 months",
            tool("spending", {**span, "group_by": "payee"}),
            summary(reports.GroupBy.PAYEE),
        ),
        ("cash_flow, 12 months", tool("cash_flow", span), cashflow),
        ("net_worth, 12 months of history", tool("net_worth", {"months": 12}), net_worth),
        ("recurring_payments, 12 months", tool("recurring_payments", {"months": 12}), None),
        ("budget_status, one month", tool("budget_status", {"month": "2026-10"}), None),
    ]


async def _measure(settings: Settings, count: int, repeat: int) -> list[dict[str, Any]]:
    services = build_services(settings)
    fixture = await build(services, settings, count)
    engine = create_engine(settings)
    keyring = services.keyring
    async with unit_of_work(engine) as session:
        index = blind_index(await keyring.index_key(session), "bench@example.com")
        user = await IdentityRepository(session).user_by_email_index(index)
        assert user is not None
        tenant = await identity.open_tenant(session, keyring, user.id, fixture.workspace_id)
    print(f"  {fixture.transactions:,} transactions, {fixture.postings:,} postings", flush=True)
    results = []
    for label, timed, baseline in _cases():
        samples: dict[str, list[float]] = {"tool": [], "report": []}
        cited = 0
        for round_number in range(repeat + 1):  # the first round warms caches, untimed
            sides = [("tool", timed), ("report", baseline)]
            if round_number % 2:
                sides.reverse()  # alternate the order so outside load hits both sides
            for side, call in sides:
                if call is None:
                    continue
                async with unit_of_work(engine, write=False) as session:
                    await bind_scope(session, workspace_id=tenant.workspace_id)
                    ctx = ToolContext(session=session, tenant=tenant, today=TODAY)
                    started = time.perf_counter()
                    outcome = await call(ctx)
                    elapsed = (time.perf_counter() - started) * 1000
                if round_number:
                    samples[side].append(elapsed)
                if side == "tool":
                    cited = len(outcome.transaction_ids)
        row: dict[str, Any] = {
            "case": label,
            "citations": cited,
            "tool_ms": statistics.median(samples["tool"]),
        }
        if samples["report"]:
            row["report_ms"] = statistics.median(samples["report"])
            row["ratio"] = row["tool_ms"] / row["report_ms"]
        results.append(row)
        print(_line(row), flush=True)
    await engine.dispose()
    await services.engine.dispose()
    return results


def _line(row: dict[str, Any]) -> str:
    report = f"{row['report_ms']:>9.1f}" if "report_ms" in row else f"{'-':>9}"
    ratio = f"{row['ratio']:>6.1f}x" if "ratio" in row else f"{'-':>7}"
    return (
        f"  {row['case']:<36} tool {row['tool_ms']:>9.1f} ms  report {report} ms  "
        f"ratio {ratio}  citations {row['citations']:>7,}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds per case")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wealthwise-bench-") as data_dir:
        settings = Settings(
            data_dir=Path(data_dir), log_level="WARNING", graphiql=False
        ).model_copy(update=ROOMY_RATE_LIMITS)
        upgrade(settings)
        print(f"== sqlite: {args.transactions:,} transactions, median of {args.repeat} rounds")
        asyncio.run(_measure(settings, args.transactions, args.repeat))


if __name__ == "__main__":
    main()
