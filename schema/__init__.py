"""The GraphQL schema: one module per domain context, merged here."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from graphql.validation import ASTValidationRule
from strawberry import relay
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as max_aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as max_depth_rule
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from domain.core.errors import DomainError
from schema.errors import ErrorCodes, WriteIntent
from schema.identity.api import IdentityMutation, IdentityQuery
from schema.identity.api_tokens import ApiTokenMutation, ApiTokenQuery
from schema.ledger.mutations import LedgerMutation
from schema.ledger.queries import LedgerQuery


@strawberry.type
class NodeQuery:
    node: relay.Node | None = relay.node(
        description="Any object by its global id; null when unknown or not yours."
    )


Query = merge_types("Query", (IdentityQuery, LedgerQuery, NodeQuery, ApiTokenQuery))
Mutation = merge_types("Mutation", (IdentityMutation, LedgerMutation, ApiTokenMutation))


# Built once: QueryDepthLimiter/MaxAliasesLimiter make a new rule class per request, which
# would defeat the validation cache (its key includes the rule classes).
LIMIT_RULES: list[type[ASTValidationRule]] = [max_depth_rule(12, None), max_aliases_rule(30)]


class WealthWiseSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log only unexpected errors: a client's bad input is not a server problem."""
        unexpected = [
            error
            for error in errors
            if error.original_error is not None
            and not isinstance(error.original_error, (DomainError, GraphQLError))
        ]
        super().process_errors(unexpected, execution_context)


schema = WealthWiseSchema(
    query=Query,
    mutation=Mutation,
    extensions=[
        WriteIntent,
        ErrorCodes,
        # Frontends send the same few documents again and again: parse and validate once.
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
        lambda: AddValidationRules(LIMIT_RULES),
        lambda: MaxTokensLimiter(max_token_count=5_000),
    ],
)
