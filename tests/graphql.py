"""A small GraphQL client for tests, and factories that go through the public API."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

PASSWORD = "correct-horse-battery"


class GraphQLFailure(AssertionError):
    pass


class Client:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.headers: dict[str, str] = {}

    async def execute(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables}, headers=self.headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def ok(self, query: str, **variables: Any) -> dict[str, Any]:
        body = await self.execute(query, **variables)
        if body.get("errors"):
            raise GraphQLFailure(body["errors"])
        data: dict[str, Any] = body["data"]
        return data

    async def error(self, query: str, **variables: Any) -> dict[str, Any]:
        """The single error of a failing operation (asserts that it failed)."""
        body = await self.execute(query, **variables)
        assert body.get("errors"), f"expected an error, got {body}"
        error: dict[str, Any] = body["errors"][0]
        assert "code" in error.get("extensions", {}), error
        return error

    async def code(self, query: str, **variables: Any) -> str:
        return str((await self.error(query, **variables))["extensions"]["code"])

    def use_workspace(self, workspace_id: str) -> None:
        self.headers["X-Workspace-ID"] = workspace_id


REGISTER = """
mutation($email: String!, $password: String!, $name: String!, $currency: String!) {
  register(email: $email, password: $password, name: $name, baseCurrency: $currency) {
    user { id email name }
    workspaces { id name baseCurrency role }
  }
}"""


async def register(client: Client, *, name: str = "Asha", currency: str = "INR") -> dict[str, Any]:
    email = f"{name.lower()}-{uuid.uuid4().hex[:10]}@example.com"
    data = await client.ok(REGISTER, email=email, password=PASSWORD, name=name, currency=currency)
    session: dict[str, Any] = data["register"]
    session["email"] = email
    return session


async def create_account(
    client: Client,
    *,
    name: str = "HDFC",
    currency: str = "INR",
    opening: str = "0",
    kind: str = "CHECKING",
    number: str | None = None,
) -> str:
    data = await client.ok(
        """mutation($i: CreateAccountInput!) { createAccount(input: $i) { id } }""",
        i={
            "name": name,
            "kind": kind,
            "currency": currency,
            "openingBalance": opening,
            "openingDate": "2024-01-01",
            "number": number,
        },
    )
    return str(data["createAccount"]["id"])


async def category_ids(client: Client) -> dict[str, str]:
    data = await client.ok("{ categories { id name } }")
    return {c["name"]: c["id"] for c in data["categories"]}


POST = """
mutation($i: TransactionInput!, $k: String!) {
  postTransaction(input: $i, idempotencyKey: $k) { id amount { amount currency } kind }
}"""


async def post(
    client: Client,
    account: str,
    category: str,
    amount: str,
    date: str = "2025-03-10",
    payee: str | None = "Shop",
    key: str | None = None,
    **extra: Any,
) -> str:
    data = await client.ok(
        POST,
        i={
            "accountId": account,
            "categoryId": category,
            "amount": amount,
            "date": date,
            "payee": payee,
            **extra,
        },
        k=key or uuid.uuid4().hex,
    )
    return str(data["postTransaction"]["id"])
