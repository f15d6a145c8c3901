"""Budgets over GraphQL: members set and remove them, viewers read them, bad input is
refused with a code and changes nothing."""

from __future__ import annotations

from typing import Any

from tests.graphql import category_ids, create_account
from tests.schema.roles import household

SET = """
mutation($c: ID!, $a: Decimal!) {
  setBudget(categoryId: $c, amount: $a) { category { id name } amount { amount currency } }
}"""
REMOVE = "mutation($c: ID!) { removeBudget(categoryId: $c) }"
LIST = "{ budgets { category { name } amount { amount currency } } }"


async def test_a_member_sets_and_replaces_a_budget_and_a_viewer_reads_it(make_client: Any) -> None:
    home = await household(make_client)
    categories = await category_ids(home.owner.client)
    set_ = await home.member.client.ok(SET, c=categories["Groceries"], a="18000")
    assert set_["setBudget"]["amount"] == {"amount": "18000.00", "currency": "INR"}
    await home.member.client.ok(SET, c=categories["Groceries"], a="15500.50")
    await home.owner.client.ok(SET, c=categories["Food"], a="30000")
    listed = (await home.viewer.client.ok(LIST))["budgets"]
    assert listed == [
        {"category": {"name": "Groceries"}, "amount": {"amount": "15500.50", "currency": "INR"}},
        {"category": {"name": "Food"}, "amount": {"amount": "30000.00", "currency": "INR"}},
    ]
    assert await home.viewer.client.code(SET, c=categories["Rent"], a="1") == "FORBIDDEN"
    assert (await home.member.client.ok(REMOVE, c=categories["Groceries"]))["removeBudget"]
    assert not (await home.member.client.ok(REMOVE, c=categories["Groceries"]))["removeBudget"]
    assert [b["category"]["name"] for b in (await home.viewer.client.ok(LIST))["budgets"]] == [
        "Food"
    ]


async def test_bad_budgets_are_refused_and_change_nothing(make_client: Any) -> None:
    home = await household(make_client)
    client = home.owner.client
    categories = await category_ids(client)
    account = await create_account(client)
    cases = [
        ({"c": categories["Salary"], "a": "100"}, "BAD_USER_INPUT"),  # an income category
        ({"c": categories["Groceries"], "a": "0"}, "BAD_USER_INPUT"),
        ({"c": categories["Groceries"], "a": "-5"}, "BAD_USER_INPUT"),
        ({"c": categories["Groceries"], "a": "10.001"}, "BAD_USER_INPUT"),  # INR has 2 places
        ({"c": categories["Groceries"], "a": "1e16"}, "BAD_USER_INPUT"),
        ({"c": account, "a": "100"}, "NOT_FOUND"),  # an account's id as a category id
    ]
    for variables, code in cases:
        assert await client.code(SET, **variables) == code, variables
    assert (await client.ok(LIST))["budgets"] == []
    assert await client.code(REMOVE, c=account) == "NOT_FOUND"
