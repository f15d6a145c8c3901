"""GraphQL cost: estimated from the parsed document; over the ceiling nothing runs."""

from __future__ import annotations

from typing import Any

from graphql import OperationType, parse

from schema import schema
from schema.cost import LIST_FACTOR, MUTATION_COST, AuthAttempt, OperationCharge, estimate
from schema.pagination import DEFAULT_FIRST, MAX_FIRST
from tests.graphql import Client, create_account, register
from tests.ratelimit.conftest import LimitedClients

PAGE = """
query Page($first: Int) {
  transactions(first: $first) {
    pageInfo { hasNextPage endCursor }
    edges {
      cursor
      node {
        id date payee
        amount { amount currency }
        account { id name balance { amount currency } }
        postings { amount { amount } category { name } }
        tags { name }
      }
    }
  }
}"""


def cost_of(query: str, **variables: Any) -> OperationCharge:
    return estimate(schema._schema, parse(query), None, variables)


def test_a_connection_counts_its_page_size() -> None:
    one, hundred = cost_of(PAGE, first=1).cost, cost_of(PAGE, first=100).cost
    assert 90 * one < hundred < 101 * one
    # What a page of a hundred costs, field by field: pageInfo (3) is not multiplied.
    postings = 1 + LIST_FACTOR * ((1 + 1) + (1 + 1))
    tags = 1 + LIST_FACTOR * 1
    node = 1 + 3 + (1 + 2) + (1 + 2 + (1 + 2)) + postings + tags
    edge = 1 + 1 + node
    assert hundred == 1 + 3 + 100 * edge


def test_first_comes_from_a_literal_a_variable_or_the_default_and_is_capped() -> None:
    literal = cost_of("{ transactions(first: 7) { edges { node { id } } } }").cost
    assert literal == 1 + 7 * (1 + (1 + 1))
    by_default = cost_of("{ transactions { edges { node { id } } } }").cost
    assert by_default == 1 + DEFAULT_FIRST * 3
    capped = cost_of("{ transactions(first: 100000) { edges { node { id } } } }").cost
    assert capped == 1 + MAX_FIRST * 3
    assert cost_of(PAGE, first=None).cost == cost_of(PAGE, first=DEFAULT_FIRST).cost


def test_fragments_and_aliases_are_counted() -> None:
    plain = cost_of("{ accounts { id name } }").cost
    assert plain == 1 + LIST_FACTOR * 2
    fragment = "{ accounts { ...A } } fragment A on Account { id name }"
    assert cost_of(fragment).cost == plain
    aliased = "{ a: accounts { id name } b: accounts { id name } }"
    assert cost_of(aliased).cost == 2 * plain
    typed = '{ node(id: "x") { id ... on Account { name currency } } }'
    assert cost_of(typed).cost == 1 + 1 + 2


def test_mutations_cost_more_than_queries() -> None:
    query = cost_of("{ me { user { id } } }")
    mutation = cost_of("mutation { logout { sessionsEnded } }")
    assert query.operation is OperationType.QUERY and query.cost == 3
    assert mutation.operation is OperationType.MUTATION
    assert mutation.cost == MUTATION_COST + 2
    two = cost_of("mutation { a: logout { sessionsEnded } b: logout { sessionsEnded } }")
    assert two.cost == 2 * mutation.cost


def test_login_like_mutations_name_their_target() -> None:
    charge = cost_of(
        """mutation($e: String!) {
             login(email: $e, password: "x") { user { id } }
             register(email: " Asha@Example.COM ", password: "x", name: "A") { user { id } }
             refreshSession { user { id } }
             acceptInvitation(token: "invite-token") { id }
           }""",
        e="Rohan@Example.com",
    )
    assert charge.auth_attempts == (
        AuthAttempt("login", "rohan@example.com"),
        AuthAttempt("register", "asha@example.com"),
        AuthAttempt("refreshSession", None),
        AuthAttempt("acceptInvitation", "invite-token"),
    )


async def test_successful_responses_carry_their_cost(make_client: Any) -> None:
    client: Client = make_client()
    await register(client)
    response = await client.http.post(
        "/graphql", json={"query": "{ me { user { id } } }"}, headers=client.headers
    )
    assert response.status_code == 200
    assert response.json()["extensions"]["cost"] == {"estimated": 3}


async def test_an_operation_over_the_ceiling_is_refused_before_it_runs(
    limited_app: Any,
) -> None:
    make: LimitedClients = limited_app(rate_limit_max_cost=40)
    client = make()
    await register(client)
    create = """
      mutation {
        a: createAccount(input: {name: "A", kind: CASH, currency: "INR"}) { id name }
        b: createAccount(input: {name: "B", kind: CASH, currency: "INR"}) { id name }
        c: createAccount(input: {name: "C", kind: CASH, currency: "INR"}) { id name }
        d: createAccount(input: {name: "D", kind: CASH, currency: "INR"}) { id name }
      }"""
    response = await client.http.post("/graphql", json={"query": create})
    assert response.status_code == 400
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"] == {"code": "QUERY_TOO_COMPLEX", "cost": 4 * 13, "maxCost": 40}
    # Nothing ran: no account exists. Under the ceiling the same mutation works.
    assert (await client.ok("{ accounts { id } }"))["accounts"] == []
    await create_account(client, name="A")
    assert len((await client.ok("{ accounts { id } }"))["accounts"]) == 1


async def test_the_default_ceiling_refuses_a_huge_query(make_client: Any) -> None:
    client: Client = make_client()
    await register(client)
    huge = (
        "{ "
        + " ".join(
            f"p{i}: transactions(first: 100) {{ edges {{ node {{ id date }} }} }}"
            for i in range(20)
        )
        + " }"
    )
    response = await client.http.post("/graphql", json={"query": huge})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
