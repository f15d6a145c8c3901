"""schema.graphql at the repo root is the schema the code builds."""

from __future__ import annotations

from pathlib import Path

from schema import schema

EXPORTED = Path(__file__).resolve().parents[1] / "schema.graphql"


def test_exported_schema_matches_the_code() -> None:
    assert EXPORTED.read_text() == schema.as_str() + "\n", (
        "schema.graphql is stale: run `./wealthwise export-schema`"
    )


def test_every_mutation_that_moves_money_takes_an_idempotency_key() -> None:
    from graphql import GraphQLObjectType

    mutation = schema._schema.get_type("Mutation")
    assert isinstance(mutation, GraphQLObjectType)
    moving = {
        "postTransaction",
        "transfer",
        "postJournalEntry",
        "editTransaction",
        "editTransfer",
        "editJournalEntry",
        "deleteTransaction",
    }
    for name in moving:
        argument = mutation.fields[name].args["idempotencyKey"]
        assert str(argument.type) == "String!", name
