"""The advisor's ledger tools against figures summed straight from the posted drafts, on
both backends; their citations; the search port; and workspace isolation."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from domain.advisor.tools import (
    SearchHit,
    ToolInputError,
    ToolUnavailable,
    run_tool,
    toolbox,
)
from domain.core.settings import Settings
from domain.ledger import reports
from domain.ledger import transactions as tx_service
from domain.ledger.transactions import TransactionDraft
from tests.advisor.households import (
    ANCHOR,
    INCOME,
    Household,
    between,
    category_legs,
    cents,
    demo_household,
    in_base,
    listed_ids,
    month_end,
    usd_rate,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

FEB = (dt.date(2026, 2, 1), dt.date(2026, 2, 28))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def household(database: Settings) -> AsyncIterator[Household]:
    built = await demo_household(database)
    yield built
    await built.engine.dispose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def neighbour(database: Settings) -> AsyncIterator[Household]:
    """A second workspace with the same demo ledger (same names, same payees)."""
    built = await demo_household(database, name="Neighbour")
    yield built
    await built.engine.dispose()


def amount(money: dict[str, str], currency: str = "INR") -> Decimal:
    assert money["currency"] == currency, money
    return Decimal(money["amount"])


async def test_groceries_last_month_match_the_posted_drafts(household: Household) -> None:
    groceries = household.categories["Groceries"]
    legs = [leg for leg in between(category_legs(household), *FEB) if leg.category_id == groceries]
    assert legs, "the demo buys groceries every month"
    async with household.context() as ctx:
        result = await run_tool(
            ctx,
            "spending",
            {"start": "2026-02-01", "end": "2026-02-28", "categories": ["groceries"]},
        )
        summary = await reports.spending_summary(
            ctx.session, ctx.tenant, reports.Period(*FEB), reports.GroupBy.CATEGORY
        )
    assert amount(result.data["total"]) == in_base(household, legs)
    assert [row["label"] for row in result.data["rows"]] == ["Groceries"]
    report_row = next(row for row in summary.rows if row.category_id == groceries)
    assert amount(result.data["total"]) == report_row.amount.amount  # agrees with the report
    assert set(result.transaction_ids) == await listed_ids(household, ["Groceries"], *FEB)
    assert len(result.transaction_ids) == result.data["transactions"] == len(legs)


async def test_a_parent_category_covers_its_children_and_rows_add_up(household: Household) -> None:
    food = {household.categories[n] for n in ("Groceries", "Dining out", "Food delivery")}
    legs = [leg for leg in between(category_legs(household), *FEB) if leg.category_id in food]
    async with household.context() as ctx:
        result = await run_tool(
            ctx,
            "spending",
            {"start": "2026-02-01", "end": "2026-02-28", "categories": ["Food"]},
        )
    rows = result.data["rows"]
    assert {row["label"] for row in rows} == {"Groceries", "Dining out", "Food delivery"}
    assert all(row["parent"] == "Food" for row in rows)
    assert amount(result.data["total"]) == in_base(household, legs)
    assert sum(amount(row["amount"]) for row in rows) == amount(result.data["total"])
    for row in rows:
        own = [leg for leg in legs if leg.category_id == household.categories[row["label"]]]
        assert amount(row["amount"]) == in_base(household, own)


async def test_spending_by_payee_subtracts_refunds_and_filters_case_insensitively(
    household: Household,
) -> None:
    start, end = dt.date(2023, 4, 1), ANCHOR
    legs = [
        leg
        for leg in between(category_legs(household), start, end)
        if (leg.payee or "").casefold() == "swiggy"
    ]
    assert any(leg.amount < 0 for leg in legs), "the demo has Swiggy refunds"
    async with household.context() as ctx:
        result = await run_tool(
            ctx,
            "spending",
            {
                "start": start.isoformat(),
                "end": end.isoformat(),
                "group_by": "payee",
                "payees": ["SWIGGY", "Uber Eats"],
            },
        )
    assert [row["label"] for row in result.data["rows"]] == ["Swiggy"]
    assert result.data["payees_without_spending"] == ["uber eats"]
    assert amount(result.data["total"]) == in_base(household, legs)
    assert len(set(result.transaction_ids)) == len(legs)


async def test_foreign_currency_spending_is_converted_at_the_month_end_rate(
    household: Household,
) -> None:
    chase = household.accounts["chase"]
    legs = [
        leg
        for leg in between(category_legs(household), dt.date(2025, 10, 1), dt.date(2026, 2, 28))
        if leg.account_id == chase and leg.amount > 0
    ]
    assert legs and all(leg.currency == "USD" for leg in legs)
    async with household.context() as ctx:
        result = await run_tool(
            ctx,
            "spending",
            {
                "start": "2025-10-01",
                "end": "2026-02-28",
                "group_by": "month",
                "accounts": ["chase checking"],
            },
        )
    rows = {row["key"]: row for row in result.data["rows"]}
    assert list(rows) == ["2025-10", "2025-11", "2025-12", "2026-01", "2026-02"]
    for key, row in rows.items():
        year, month = map(int, key.split("-"))
        own = [leg for leg in legs if (leg.date.year, leg.date.month) == (year, month)]
        usd = sum((leg.amount for leg in own), Decimal(0))
        assert row["by_currency"] == [{"amount": str(usd), "currency": "USD"}]
        assert amount(row["amount"]) == in_base(household, own)
        # at least one month is a single category: there the figure is one conversion
        rate = usd_rate(household, month_end(dt.date(year, month, 1)))
        if len({leg.category_id for leg in own}) == 1:
            assert amount(row["amount"]) == cents(usd * rate)


async def test_the_month_totals_path_and_the_posting_scan_agree(household: Household) -> None:
    """Without payee or account filters the figures come from the month totals (no posting
    decrypted); naming every account forces the scan of each posting. Same figures."""
    start, end = dt.date(2025, 6, 10), dt.date(2026, 2, 20)  # partial months at both ends
    legs = [leg for leg in between(category_legs(household), start, end) if leg.amount]
    expense = [leg for leg in legs if leg.category_id not in _income_ids(household)]
    every_account = [str(account_id) for account_id in household.accounts.values()]
    span = {"start": start.isoformat(), "end": end.isoformat()}
    async with household.context() as ctx:
        for group_by in ("category", "month"):
            fast = await run_tool(ctx, "spending", {**span, "group_by": group_by})
            scan = await run_tool(
                ctx, "spending", {**span, "group_by": group_by, "accounts": every_account}
            )
            assert fast.data["rows"] == scan.data["rows"], group_by
            assert fast.data["total"] == scan.data["total"]
            assert set(fast.transaction_ids) == set(scan.transaction_ids)
            assert amount(fast.data["total"]) == in_base(household, expense)
        by_month = {row["key"]: row for row in fast.data["rows"]}
    expense_names = [n for n in household.categories if n not in INCOME]
    for key, row in by_month.items():
        year, month = map(int, key.split("-"))
        own = [leg for leg in expense if (leg.date.year, leg.date.month) == (year, month)]
        assert amount(row["amount"]) == in_base(household, own)
        first = max(start, dt.date(year, month, 1))
        last = min(end, month_end(first))
        assert row["transactions"] == len(await listed_ids(household, expense_names, first, last))


def _income_ids(household: Household) -> set[uuid.UUID]:
    return {household.categories[name] for name in INCOME}


async def test_compare_periods_dining_this_quarter_with_last(household: Household) -> None:
    dining = household.categories["Dining out"]
    legs = [leg for leg in category_legs(household) if leg.category_id == dining]
    last_q = between(legs, dt.date(2025, 10, 1), dt.date(2025, 12, 31))
    this_q = between(legs, dt.date(2026, 1, 1), ANCHOR)
    async with household.context() as ctx:
        result = await run_tool(
            ctx,
            "compare_periods",
            {
                "first": {"start": "2025-10-01", "end": "2025-12-31"},
                "second": {"start": "2026-01-01", "end": ANCHOR.isoformat()},
                "categories": ["Dining Out"],
            },
        )
    total = result.data["total"]
    first, second = in_base(household, last_q), in_base(household, this_q)
    assert (amount(total["first"]), amount(total["second"])) == (first, second)
    assert amount(total["change"]) == second - first
    assert total["change_percent"] == str(
        ((second - first) * 100 / first).quantize(Decimal("0.01"))
    )
    expected = await listed_ids(household, ["Dining out"], dt.date(2025, 10, 1), ANCHOR)
    assert set(result.transaction_ids) == expected


async def test_cash_flow_per_month_and_savings_rate(household: Household) -> None:
    start, end = dt.date(2025, 9, 1), dt.date(2026, 2, 28)
    income_ids = {household.categories[n] for n in INCOME}
    legs = between(category_legs(household), start, end)
    async with household.context() as ctx:
        result = await run_tool(
            ctx, "cash_flow", {"start": start.isoformat(), "end": end.isoformat()}
        )
    months = result.data["months"]
    assert [m["month"] for m in months] == [
        "2025-09",
        "2025-10",
        "2025-11",
        "2025-12",
        "2026-01",
        "2026-02",
    ]
    for row in months:
        year, month = map(int, row["month"].split("-"))
        own = [leg for leg in legs if (leg.date.year, leg.date.month) == (year, month)]
        income = -in_base(household, [leg for leg in own if leg.category_id in income_ids])
        expenses = in_base(household, [leg for leg in own if leg.category_id not in income_ids])
        assert (amount(row["income"]), amount(row["expenses"])) == (income, expenses)
        assert amount(row["net"]) == income - expenses
        rate = ((income - expenses) * 100 / income).quantize(Decimal("0.01"))
        assert row["savings_rate_percent"] == str(rate)
    total = result.data["total"]
    assert amount(total["income"]) == sum(amount(m["income"]) for m in months)
    assert amount(total["net"]) == amount(total["income"]) - amount(total["expenses"])
    # every income or expense draft of the period, once (a split is one transaction)
    drafts = [
        d for d in household.drafts if isinstance(d, TransactionDraft) and start <= d.date <= end
    ]
    assert len(set(result.transaction_ids)) == len(result.transaction_ids) == len(drafts)


async def test_net_worth_balances_match_the_drafts(household: Household) -> None:
    opening = {spec.key: Decimal(spec.opening) for spec in _specs()}
    native = dict(opening)
    key_of = {v: k for k, v in household.accounts.items()}
    for draft in household.drafts:
        if isinstance(draft, TransactionDraft):
            native[key_of[draft.account_id]] += draft.amount or sum(
                (s.amount for s in draft.splits), Decimal(0)
            )
        else:
            native[key_of[draft.from_account_id]] -= draft.amount
            native[key_of[draft.to_account_id]] += (
                draft.to_amount if draft.to_amount is not None else draft.amount
            )
    async with household.context() as ctx:
        result = await run_tool(ctx, "net_worth", {"months": 6})
    rate = usd_rate(household, month_end(ANCHOR))
    assets = liabilities = Decimal(0)
    by_name = {row["account"]: row for row in result.data["accounts"]}
    for spec in _specs():
        row = by_name[spec.name]
        assert amount(row["balance"], spec.currency) == native[spec.key]
        value = native[spec.key] if spec.currency == "INR" else cents(native[spec.key] * rate)
        assert amount(row["balance_in_base"]) == value
        if spec.kind in ("credit_card", "loan") or value < 0:
            liabilities -= value
        else:
            assets += value
    assert amount(result.data["assets"]) == assets
    assert amount(result.data["liabilities"]) == liabilities
    assert amount(result.data["net_worth"]) == assets - liabilities
    history = result.data["history"]
    assert [p["month"] for p in history][-1] == "2026-03" and len(history) == 6
    assert history[-1]["net_worth"] == result.data["net_worth"]
    # each account's latest transaction up to the balance date (a transfer may be two's)
    assert 1 <= len(set(result.transaction_ids)) == len(result.transaction_ids) <= 8
    async with household.context() as ctx:
        cited = [
            await tx_service.get_transaction(ctx.session, ctx.tenant, i)
            for i in result.transaction_ids
        ]
    assert max(item.date for item in cited) == max(d.date for d in household.drafts)
    for key, account_id in household.accounts.items():
        touching = [d for d in household.drafts if account_id in _accounts_of(d)]
        latest = max(d.date for d in touching)
        assert any(item.date == latest for item in cited), key


def _accounts_of(draft: Any) -> set[uuid.UUID]:
    if isinstance(draft, TransactionDraft):
        return {draft.account_id}
    return {draft.from_account_id, draft.to_account_id}


def _specs() -> Sequence[Any]:
    from domain import demo

    return demo.ACCOUNTS


async def test_recurring_payments_finds_the_subscriptions_and_not_the_shopping(
    household: Household,
) -> None:
    async with household.context() as ctx:
        result = await run_tool(ctx, "recurring_payments", {"months": 12})
    found = {item["payee"]: item for item in result.data["recurring"]}
    for payee in ("Netflix", "Spotify", "Jio Fiber", "Airtel", "iCloud", "Notion"):
        assert payee in found, sorted(found)
        assert found[payee]["cadence"] == "monthly"
    for payee in ("BigBasket", "Swiggy", "Zomato", "DMart"):
        assert payee not in found
    start = dt.date.fromisoformat(result.data["window"]["start"])
    netflix = [
        d
        for d in household.drafts
        if isinstance(d, TransactionDraft) and d.payee == "Netflix" and start <= d.date <= ANCHOR
    ]
    item = found["Netflix"]
    assert item["charges"] == len(netflix) == len(item["transaction_ids"])
    latest = max(netflix, key=lambda d: d.date)
    assert latest.amount is not None
    assert amount(item["amount"]) == -latest.amount
    assert amount(item["yearly_cost"]) == -latest.amount * 12
    icloud = found["iCloud"]
    assert amount(icloud["amount"], "USD") == Decimal("2.99")
    last = dt.date.fromisoformat(icloud["last_charge"])
    assert amount(icloud["amount_in_base"]) == cents(
        Decimal("2.99") * usd_rate(household, month_end(last))
    )
    assert amount(result.data["yearly_total"]) == sum(
        amount(i["yearly_cost"]) for i in result.data["recurring"]
    )
    cited = {str(i) for i in result.transaction_ids}
    assert all(set(i["transaction_ids"]) <= cited for i in result.data["recurring"])


async def test_a_yearly_charge_needs_three_years_of_history(household: Household) -> None:
    async with household.context() as ctx:
        short = await run_tool(ctx, "recurring_payments", {"months": 12})
        long = await run_tool(ctx, "recurring_payments", {"months": 36})
    assert "Amazon Prime" not in {i["payee"] for i in short.data["recurring"]}
    prime = next(i for i in long.data["recurring"] if i["payee"] == "Amazon Prime")
    assert prime["cadence"] == "yearly" and prime["charges"] == 3


async def test_budget_status_against_the_demo_budgets(household: Household) -> None:
    from domain import demo

    legs = between(category_legs(household), *FEB)
    async with household.context() as ctx:
        result = await run_tool(ctx, "budget_status", {"month": "2026-02"})
    rows = {row["category"]: row for row in result.data["budgets"]}
    assert set(rows) == {name for name, _ in demo.BUDGETS}
    cited: set[uuid.UUID] = set()
    for name, budget in demo.BUDGETS:
        row = rows[name]
        spent = in_base(
            household, [leg for leg in legs if leg.category_id == household.categories[name]]
        )
        assert amount(row["budget"]) == Decimal(budget)
        assert amount(row["spent"]) == spent
        assert amount(row["remaining"]) == Decimal(budget) - spent
        expected = (
            "over"
            if spent > Decimal(budget)
            else "near"
            if spent >= Decimal(budget) * Decimal("0.9")
            else "under"
        )
        assert row["status"] == expected
        cited |= await listed_ids(household, [name], *FEB)
    assert set(result.transaction_ids) == cited


class FakeSearch:
    """A test adapter of the retrieval port: answers fixed hits and records the call."""

    def __init__(self, hits: list[SearchHit]) -> None:
        self.hits = hits
        self.calls: list[dict[str, Any]] = []

    async def search(
        self,
        workspace_id: uuid.UUID,
        query: str,
        *,
        limit: int = 10,
        start: dt.date | None = None,
        end: dt.date | None = None,
        account_ids: Sequence[uuid.UUID] = (),
        category_ids: Sequence[uuid.UUID] = (),
    ) -> list[SearchHit]:
        self.calls.append(
            {
                "workspace_id": workspace_id,
                "query": query,
                "limit": limit,
                "start": start,
                "end": end,
                "account_ids": set(account_ids),
                "category_ids": set(category_ids),
            }
        )
        return self.hits[:limit]


async def test_search_transactions_returns_the_hits_transactions_and_drops_foreign_ids(
    household: Household, neighbour: Household
) -> None:
    own = sorted(await listed_ids(household, ["Rides"], *FEB))
    foreign = sorted(await listed_ids(neighbour, ["Rides"], *FEB))
    hits = [SearchHit(own[0], 0.9), SearchHit(foreign[0], 0.8), SearchHit(own[1], 0.7)]
    search = FakeSearch(hits)
    async with household.context(search=search) as ctx:
        result = await run_tool(
            ctx,
            "search_transactions",
            {
                "query": "rides to the airport",
                "start": "2026-02-01",
                "end": "2026-02-28",
                "accounts": ["HDFC salary account"],
                "categories": ["Transport"],
            },
        )
        first = await tx_service.get_transaction(ctx.session, ctx.tenant, own[0])
    assert result.transaction_ids == (own[0], own[1])
    call = search.calls[0]
    assert call["workspace_id"] == household.tenant.workspace_id
    assert call["account_ids"] == {household.accounts["hdfc"]}
    transport = {household.categories[n] for n in ("Fuel", "Rides", "Public transport")}
    assert call["category_ids"] == transport | {household.categories["Transport"]}
    row = result.data["results"][0]
    assert row["id"] == str(own[0]) and row["date"] == first.date.isoformat()
    assert row["payee"] == first.payee
    assert row["amount"] == {"amount": str(first.amount.amount), "currency": "INR"}
    assert row["categories"] == ["Rides"] and row["category"] == "Rides"
    assert row["account"]


async def test_search_without_an_index_is_a_clear_error(household: Household) -> None:
    async with household.context(search=None) as ctx:
        with pytest.raises(ToolUnavailable, match="not available"):
            await run_tool(ctx, "search_transactions", {"query": "uber"})


async def test_another_workspace_never_sees_the_first_ones_transactions(
    household: Household, neighbour: Household
) -> None:
    arguments: list[tuple[str, dict[str, Any]]] = [
        ("spending", {"start": "2023-01-01", "end": ANCHOR.isoformat()}),
        ("cash_flow", {"start": "2025-01-01", "end": ANCHOR.isoformat()}),
        ("net_worth", {}),
        ("recurring_payments", {"months": 36}),
        ("budget_status", {"month": "2026-02"}),
    ]
    everything_of_first = await listed_ids(
        household, list(household.categories), dt.date(2023, 1, 1), ANCHOR
    )
    for name, args in arguments:
        async with neighbour.context() as ctx:
            theirs = await run_tool(ctx, name, args)
        async with household.context() as ctx:
            mine = await run_tool(ctx, name, args)
        assert theirs.transaction_ids, name
        assert not set(theirs.transaction_ids) & everything_of_first, name
        assert not set(theirs.transaction_ids) & set(mine.transaction_ids), name
    # the first workspace's ids are unknown names to the second
    async with neighbour.context() as ctx:
        with pytest.raises(ToolInputError, match="Unknown category"):
            await run_tool(
                ctx,
                "spending",
                {
                    "start": "2026-02-01",
                    "end": "2026-02-28",
                    "categories": [str(household.categories["Groceries"])],
                },
            )
        with pytest.raises(ToolInputError, match="Unknown account"):
            await run_tool(
                ctx,
                "spending",
                {
                    "start": "2026-02-01",
                    "end": "2026-02-28",
                    "accounts": [str(household.accounts["hdfc"])],
                },
            )


@pytest.mark.parametrize(
    ("name", "arguments", "field"),
    [
        ("spending", {"start": "2026-02-30", "end": "2026-03-01"}, "start"),
        ("spending", {"start": "2026-03-01", "end": "2026-02-01"}, "start"),
        ("spending", {"start": "2026-02-01", "end": "2026-02-28", "group_by": "tag"}, "group_by"),
        ("spending", {"start": "2026-02-01", "end": "2026-02-28", "limit": 0}, "limit"),
        ("spending", {"start": "2026-02-01", "end": "2026-02-28", "colour": "red"}, "colour"),
        (
            "spending",
            {"start": "2026-02-01", "end": "2026-02-28", "categories": ["Yachts"]},
            "categories",
        ),
        (
            "spending",
            {"start": "2026-02-01", "end": "2026-02-28", "categories": ["Salary"]},
            "categories",
        ),
        (
            "spending",
            {"start": "2026-02-01", "end": "2026-02-28", "accounts": ["Swiss vault"]},
            "accounts",
        ),
        ("spending", {"end": "2026-02-28"}, "start"),
        ("spending", {"start": "1800-01-01", "end": "1800-02-01"}, "start"),
        (
            "compare_periods",
            {
                "first": {"start": "2026-01-01"},
                "second": {"start": "2026-02-01", "end": "2026-02-28"},
            },
            "first.end",
        ),
        ("net_worth", {"months": 0}, "months"),
        ("recurring_payments", {"months": 1000}, "months"),
        ("budget_status", {"month": "2026-13"}, "month"),
        ("budget_status", {"month": "0000-01"}, "month"),
        ("search_transactions", {"query": ""}, "query"),
    ],
)
async def test_bad_arguments_are_refused_with_the_field(
    household: Household, name: str, arguments: dict[str, Any], field: str
) -> None:
    async with household.context(search=FakeSearch([])) as ctx:
        with pytest.raises(ToolInputError) as raised:
            await run_tool(ctx, name, arguments)
    assert raised.value.field == field, raised.value.message
    assert raised.value.message


async def test_an_unknown_tool_is_an_input_error(household: Household) -> None:
    async with household.context() as ctx:
        with pytest.raises(ToolInputError, match="Unknown tool 'guess'"):
            await run_tool(ctx, "guess", {})


async def test_every_result_is_plain_json_and_deterministic(household: Household) -> None:
    hit = sorted(await listed_ids(household, ["Streaming"], *FEB))[0]
    calls: list[tuple[str, dict[str, Any]]] = [
        ("spending", {"start": "2026-01-01", "end": "2026-02-28", "group_by": "payee"}),
        (
            "compare_periods",
            {
                "first": {"start": "2026-01-01", "end": "2026-01-31"},
                "second": {"start": "2026-02-01", "end": "2026-02-28"},
                "group_by": "account",
            },
        ),
        ("cash_flow", {"start": "2026-01-01", "end": "2026-02-28"}),
        ("net_worth", {"as_of": "2026-02-10", "months": 3}),
        ("recurring_payments", {}),
        ("budget_status", {"month": "2026-01"}),
        ("future_value", {"monthly_saving": 1000, "annual_rate_percent": 7, "years": 2}),
        ("loan_emi", {"principal": 50000, "annual_rate_percent": 12, "months": 12}),
        ("goal_saving", {"target": 90000, "months": 24, "annual_rate_percent": 6}),
        ("search_transactions", {"query": "netflix"}),
    ]
    assert {name for name, _ in calls} == set(toolbox())
    for name, arguments in calls:
        async with household.context(search=FakeSearch([SearchHit(hit, 1.0)])) as ctx:
            first = await run_tool(ctx, name, arguments)
            again = await run_tool(ctx, name, arguments)
        text = json.dumps(first.data, allow_nan=False)
        assert json.loads(text) == first.data, name
        assert (first.data, first.transaction_ids) == (again.data, again.transaction_ids), name
        assert all(isinstance(i, uuid.UUID) for i in first.transaction_ids)
