"""The ledger through GraphQL: post, transfer, split, edit, delete, lists and reports."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

from tests.graphql import Client, category_ids, create_account, post, register

BALANCES = "{ accounts(includeArchived: true) { id name balance { amount currency } } }"


async def balances(client: Client) -> dict[str, Decimal]:
    data = await client.ok(BALANCES)
    return {a["id"]: Decimal(a["balance"]["amount"]) for a in data["accounts"]}


async def test_posting_an_expense_moves_the_balance_and_the_category(make_client: Any) -> None:
    client = make_client()
    await register(client)
    account = await create_account(client, opening="1000.50")
    groceries = (await category_ids(client))["Groceries"]
    tx = await post(
        client, account, groceries, "-250.25", payee="BigBasket", tags=["Food", "food "]
    )

    data = await client.ok(
        """query($id: ID!) { transaction(id: $id) {
            kind payee amount { amount currency } tags { name }
            postings { amount { amount currency } account { id } category { name } }
        } }""",
        id=tx,
    )
    found = data["transaction"]
    assert found["kind"] == "EXPENSE"
    assert found["amount"] == {"amount": "-250.25", "currency": "INR"}
    assert [t["name"] for t in found["tags"]] == ["food"]
    legs = {
        (p["account"] or {}).get("id") or p["category"]["name"]: p["amount"]["amount"]
        for p in found["postings"]
    }
    assert legs == {account: "-250.25", "Groceries": "250.25"}
    assert (await balances(client))[account] == Decimal("750.25")


async def test_split_transfer_and_cross_currency_transfer(make_client: Any) -> None:
    client = make_client()
    await register(client)
    inr = await create_account(client, name="HDFC", opening="100000")
    savings = await create_account(client, name="SBI", kind="SAVINGS")
    usd = await create_account(client, name="Chase", currency="USD")
    cats = await category_ids(client)
    split = await client.ok(
        """mutation($i: TransactionInput!) { postTransaction(input: $i, idempotencyKey: "s1") {
            kind amount { amount } postings { amount { amount } category { name } } } }""",
        i={
            "accountId": inr,
            "date": "2025-02-01",
            "payee": "DMart",
            "splits": [
                {"categoryId": cats["Groceries"], "amount": "-1200.00", "memo": "food"},
                {"categoryId": cats["Household"], "amount": "-300.50"},
            ],
        },
    )
    assert split["postTransaction"]["kind"] == "SPLIT"
    assert split["postTransaction"]["amount"]["amount"] == "-1500.50"

    await client.ok(
        """mutation($i: TransferInput!) { transfer(input: $i, idempotencyKey: "t1") { kind } }""",
        i={"fromAccountId": inr, "toAccountId": savings, "date": "2025-02-02", "amount": "5000"},
    )
    fx = await client.ok(
        """mutation($i: TransferInput!) { transfer(input: $i, idempotencyKey: "t2") {
            kind postings { amount { amount currency } } } }""",
        i={
            "fromAccountId": inr,
            "toAccountId": usd,
            "date": "2025-02-03",
            "amount": "8350.00",
            "toAmount": "100.00",
        },
    )
    legs = fx["transfer"]["postings"]
    per_currency: dict[str, Decimal] = {}
    for leg in legs:
        currency = leg["amount"]["currency"]
        per_currency[currency] = per_currency.get(currency, Decimal(0)) + Decimal(
            leg["amount"]["amount"]
        )
    assert per_currency == {"INR": 0, "USD": 0}
    assert len(legs) == 4
    final = await balances(client)
    assert final[inr] == Decimal("100000") - Decimal("1500.50") - 5000 - Decimal("8350.00")
    assert final[savings] == 5000
    assert final[usd] == 100


async def test_cross_currency_transfer_uses_the_fx_table_without_to_amount(
    make_client: Any,
) -> None:
    client = make_client()
    await register(client)
    inr = await create_account(client, opening="100000")
    usd = await create_account(client, name="Chase", currency="USD")
    transfer = (
        """mutation($i: TransferInput!) { transfer(input: $i, idempotencyKey: "fx") { id } }"""
    )
    payload = {"fromAccountId": inr, "toAccountId": usd, "date": "2025-02-03", "amount": "8400"}
    assert await client.code(transfer, i=payload) == "BAD_USER_INPUT"
    await client.ok(
        """mutation { setFxRate(base: "USD", quote: "INR", date: "2025-02-01", rate: "84.00") {
          rate } }"""
    )
    await client.ok(transfer, i=payload)
    assert (await balances(client))[usd] == 100


async def test_edit_and_delete_keep_balances_exact(make_client: Any) -> None:
    client = make_client()
    await register(client)
    account = await create_account(client, opening="500")
    other = await create_account(client, name="Cash", kind="CASH", opening="0")
    dining = (await category_ids(client))["Dining out"]
    tx = await post(client, account, dining, "-120.00")
    await client.ok(
        """mutation($id: ID!, $i: TransactionInput!) {
            editTransaction(id: $id, input: $i, idempotencyKey: "e1") { amount { amount } } }""",
        id=tx,
        i={"accountId": other, "categoryId": dining, "amount": "-80.00", "date": "2025-03-11"},
    )
    assert await balances(client) == {account: Decimal("500"), other: Decimal("-80.00")}
    await client.ok(
        """mutation($id: ID!) { deleteTransaction(id: $id, idempotencyKey: "d1") { id } }""", id=tx
    )
    assert await balances(client) == {account: Decimal("500"), other: Decimal("0")}
    assert (
        await client.code("query($id: ID!) { transaction(id: $id) { id } }", id=tx) == "NOT_FOUND"
    )


async def test_idempotent_retry_returns_the_first_result_and_posts_once(make_client: Any) -> None:
    client = make_client()
    await register(client)
    account = await create_account(client)
    rent = (await category_ids(client))["Rent"]
    first = await post(client, account, rent, "-25000", key="rent-2025-03")
    again = await post(client, account, rent, "-25000", key="rent-2025-03")
    assert first == again
    assert (await balances(client))[account] == Decimal("-25000")
    error = await client.error(
        """mutation($i: TransactionInput!) {
          postTransaction(input: $i, idempotencyKey: "rent-2025-03") { id } }""",
        i={
            "accountId": account,
            "categoryId": rent,
            "amount": "-26000",
            "date": "2025-03-10",
            "payee": "Shop",
        },
    )
    assert error["extensions"]["code"] == "CONFLICT"


async def test_keyset_pagination_walks_every_transaction_once_newest_first(
    make_client: Any,
) -> None:
    client = make_client()
    await register(client)
    account = await create_account(client)
    fuel = (await category_ids(client))["Fuel"]
    posted = [
        await post(client, account, fuel, f"-{i + 1}", date=f"2025-01-{(i % 9) + 1:02d}")
        for i in range(23)
    ]
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        data = await client.ok(
            """query($after: String) { transactions(first: 5, after: $after) {
                edges { cursor node { id date } } pageInfo { hasNextPage endCursor } } }""",
            after=after,
        )
        page = data["transactions"]
        seen.extend(edge["node"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert sorted(n["id"] for n in seen) == sorted(posted)
    keys = [(n["date"], base64.b64decode(n["id"]).decode().split(":")[1]) for n in seen]
    assert keys == sorted(keys, reverse=True)


async def test_filters_by_account_category_tag_dates_amount_and_text(make_client: Any) -> None:
    client = make_client()
    await register(client)
    hdfc = await create_account(client, name="HDFC")
    card = await create_account(client, name="Card", kind="CREDIT_CARD")
    cats = await category_ids(client)
    swiggy = await post(
        client, hdfc, cats["Food delivery"], "-450", "2025-04-02", payee="Swiggy", tags=["weekend"]
    )
    await post(client, card, cats["Groceries"], "-2200", "2025-04-05", payee="BigBasket")
    uber = await post(
        client, card, cats["Rides"], "-890", "2025-05-01", payee="Uber", narration="Ride to airport"
    )
    await post(client, hdfc, cats["Salary"], "150000", "2025-04-30", payee="Acme Corp")
    tags = {t["name"]: t["id"] for t in (await client.ok("{ tags { id name } }"))["tags"]}

    async def ids(**flt: Any) -> set[str]:
        data = await client.ok(
            "query($f: TransactionFilter) "
            "{ transactions(first: 50, filter: $f) { edges { node { id payee } } } }",
            f=flt,
        )
        return {edge["node"]["payee"] for edge in data["transactions"]["edges"]}

    assert await ids(accountIds=[card]) == {"BigBasket", "Uber"}
    assert await ids(categoryIds=[cats["Food"]]) == {
        "Swiggy",
        "BigBasket",
    }  # parent includes children
    assert await ids(tagIds=[tags["weekend"]]) == {"Swiggy"}
    assert await ids(dateFrom="2025-04-03", dateTo="2025-04-30") == {"BigBasket", "Acme Corp"}
    assert await ids(amountMin="800", amountMax="2200") == {"BigBasket", "Uber"}
    assert await ids(text="AIRPORT") == {"Uber"}
    assert await ids(text="swig", accountIds=[hdfc]) == {"Swiggy"}
    assert swiggy and uber


async def test_reports_match_figures_computed_from_the_postings(make_client: Any) -> None:
    client = make_client()
    await register(client)
    hdfc = await create_account(client, opening="10000")
    usd = await create_account(client, name="Chase", currency="USD", opening="0")
    loan = await create_account(client, name="Loan", kind="LOAN", opening="-50000")
    cats = await category_ids(client)
    await client.ok(
        """mutation { setFxRate(base: "USD", quote: "INR", date: "2025-01-01", rate: "83.50") {
          rate } }"""
    )
    await post(client, hdfc, cats["Salary"], "100000", "2025-01-01")
    await post(client, hdfc, cats["Groceries"], "-3000.10", "2025-01-15")
    await post(client, hdfc, cats["Groceries"], "-2000", "2025-02-20")
    await post(client, hdfc, cats["Groceries"], "500", "2025-02-21", payee="Refund")
    await post(client, usd, cats["Software"], "-10.00", "2025-02-01", payee="Notion")
    await post(client, hdfc, cats["Rent"], "-25000", "2025-03-05")  # outside the period below

    summary = await client.ok(
        """{ spendingSummary(period: {start: "2025-01-10", end: "2025-02-28"}, groupBy: CATEGORY) {
            total { amount currency }
            rows { label amount { amount } postingCount }
            unconverted { amount } } }"""
    )
    rows = {
        r["label"]: (r["amount"]["amount"], r["postingCount"])
        for r in summary["spendingSummary"]["rows"]
    }
    assert rows == {"Groceries": ("4500.10", 3), "Software": ("835.00", 1)}
    assert summary["spendingSummary"]["total"] == {"amount": "5335.10", "currency": "INR"}

    by_payee = await client.ok(
        """{ spendingSummary(period: {start: "2025-01-01", end: "2025-03-31"}, groupBy: PAYEE) {
            rows { label amount { amount } } } }"""
    )
    payees = {r["label"]: r["amount"]["amount"] for r in by_payee["spendingSummary"]["rows"]}
    assert payees == {"Shop": "30000.10", "Notion": "835.00", "Refund": "-500.00"}

    by_month = await client.ok(
        """{ spendingSummary(period: {start: "2025-01-01", end: "2025-03-31"}, groupBy: MONTH) {
            rows { month amount { amount } } } }"""
    )
    assert [(r["month"], r["amount"]["amount"]) for r in by_month["spendingSummary"]["rows"]] == [
        ("2025-01", "3000.10"),
        ("2025-02", "2335.00"),
        ("2025-03", "25000.00"),
    ]

    flow = await client.ok(
        """{ cashflow(period: {start: "2025-01-01", end: "2025-02-28"}) {
            income { amount } expenses { amount } net { amount } savingsRate
            months { month net { amount } } } }"""
    )
    assert flow["cashflow"]["income"]["amount"] == "100000.00"
    assert flow["cashflow"]["expenses"]["amount"] == "5335.10"
    assert flow["cashflow"]["net"]["amount"] == "94664.90"
    assert flow["cashflow"]["savingsRate"] == "0.9466"

    worth = await client.ok(
        "{ netWorth(months: 3) { assets { amount } liabilities { amount } net { amount } } }"
    )
    assets = Decimal(10000 + 100000) - Decimal("3000.10") - 2000 + 500 - 25000
    overdrawn_usd = Decimal("10.00") * Decimal("83.50")  # a negative asset counts as a liability
    assert Decimal(worth["netWorth"]["assets"]["amount"]) == assets
    assert Decimal(worth["netWorth"]["liabilities"]["amount"]) == 50000 + overdrawn_usd
    assert Decimal(worth["netWorth"]["net"]["amount"]) == assets - 50000 - overdrawn_usd
    assert loan


async def test_a_query_with_many_top_level_fields_shares_one_session_safely(
    make_client: Any,
) -> None:
    client = make_client()
    await register(client)
    account = await create_account(client, opening="10")
    cats = await category_ids(client)
    for i in range(5):
        await post(client, account, cats["Groceries"], f"-{i + 1}")
    data = await client.ok(
        """{ me { user { name } } workspace { name }
            accounts { balance { amount } } categories { parent { name } }
            transactions(first: 5) { edges { node { account { name } category { name } tags { name }
                postings { account { balance { amount } } category { name } } } } }
            spendingSummary(period: {start: "2025-01-01", end: "2025-12-31"}) { total { amount } }
            cashflow(period: {start: "2025-01-01", end: "2025-12-31"}) { expenses { amount } }
            netWorth(months: 2) { net { amount } } tags { name } fxRates { rate } }"""
    )
    assert data["spendingSummary"]["total"]["amount"] == "15.00"
    assert len(data["transactions"]["edges"]) == 5


async def test_archived_accounts_keep_their_history_and_refuse_new_postings(
    make_client: Any,
) -> None:
    client = make_client()
    await register(client)
    account = await create_account(client, opening="100")
    fuel = (await category_ids(client))["Fuel"]
    await post(client, account, fuel, "-40")
    await client.ok(
        "mutation($id: ID!) { updateAccount(id: $id, input: {archived: true}) { archived } }",
        id=account,
    )
    assert (await client.ok("{ accounts { id } }"))["accounts"] == []
    assert (await balances(client))[account] == 60
    error = await client.error(
        """mutation($i: TransactionInput!) {
          postTransaction(input: $i, idempotencyKey: "x") { id } }""",
        i={"accountId": account, "categoryId": fuel, "amount": "-1", "date": "2025-03-10"},
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    page = await client.ok(
        "query($f: TransactionFilter) { transactions(filter: $f) { edges { node { id } } } }",
        f={"accountIds": [account]},
    )
    assert len(page["transactions"]["edges"]) == 1


async def test_concurrent_writes_neither_lock_up_nor_lose_money(make_client: Any) -> None:
    """SQLite queues writers (BEGIN IMMEDIATE); PostgreSQL row-locks the month totals."""
    import asyncio

    client = make_client()
    await register(client)
    account = await create_account(client, opening="0")
    groceries = (await category_ids(client))["Groceries"]
    await asyncio.gather(
        *(post(client, account, groceries, f"-{i}.25", date="2025-06-15") for i in range(1, 13))
    )
    expected = -sum(Decimal(f"{i}.25") for i in range(1, 13))
    assert (await balances(client))[account] == expected
    summary = await client.ok(
        """{ spendingSummary(period: {start: "2025-06-01", end: "2025-06-30"}) {
            total { amount } } }"""
    )
    assert Decimal(summary["spendingSummary"]["total"]["amount"]) == -expected
