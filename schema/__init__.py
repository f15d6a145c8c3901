"""The GraphQL schema: one module per domain context, merged here."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from domain.core.errors import DomainError
from schema.advisor import AdvisorMutation, AdvisorQuery, AdvisorSubscription
from schema.audit import AuditMutation, AuditQuery, AuditTrail
from schema.cost import OperationCost
from schema.errors import ErrorCodes, WriteIntent
from schema.execution import WealthWiseExecutor
from schema.identity.api import IdentityMutation, IdentityQuery
from schema.identity.api_tokens import ApiTokenMutation, ApiTokenQuery
from schema.identity.oidc import OidcQuery
from schema.ledger.mutations import LedgerMutation
from schema.ledger.queries import LedgerQuery
from schema.limits import OperationLimits
from schema.realtime import OperationTransport, RealtimeSubscription


@strawberry.type
class NodeQuery:
    node: relay.Node | None = relay.node(
        description="Any object by its global id; null when unknown or not yours."
    )


Query = merge_types(
    "Query",
    (IdentityQuery, OidcQuery, LedgerQuery, NodeQuery, AuditQuery, ApiTokenQuery, AdvisorQuery),
)
Mutation = merge_types(
    "Mutation",
    (IdentityMutation, LedgerMutation, AuditMutation, ApiTokenMutation, AdvisorMutation),
)


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


Subscription = merge_types("Subscription", (RealtimeSubscription, AdvisorSubscription))

schema = WealthWiseSchema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    # Each subscription event's executor gets its own memos (schema/execution.py).
    execution_context_class=WealthWiseExecutor,
    extensions=[
        OperationTransport,
        WriteIntent,
        ErrorCodes,
        AuditTrail,
        # Frontends send the same few documents again and again: parse and validate once.
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
        # Depth, alias and token limits and introspection, from the app's settings.
        OperationLimits,
        OperationCost,
    ],
)
