"""API tokens in GraphQL: create (the secret is shown once), list, revoke.

Only a signed-in person manages tokens (IsAuthenticated refuses a token caller).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from enum import Enum

import strawberry
from strawberry import relay

from domain.identity import api_tokens
from domain.identity.models import ApiTokenScope as DomainScope
from schema.common import CanRead, IsAuthenticated
from schema.context import Info
from schema.ids import decode_id


@strawberry.enum(description="READ acts as a viewer; WRITE as a member at most.")
class ApiTokenScope(Enum):
    READ = "read"
    WRITE = "write"


@strawberry.type
class ApiToken(relay.Node):
    id: relay.NodeID[str]
    name: str
    scope: ApiTokenScope
    created_at: datetime.datetime
    expires_at: datetime.datetime | None
    last_used_at: datetime.datetime | None = strawberry.field(
        description="Updated at most once a minute."
    )
    revoked_at: datetime.datetime | None

    @classmethod
    def of(cls, view: api_tokens.ApiTokenView) -> ApiToken:
        return cls(
            id=view.id.hex,
            name=view.name,
            scope=ApiTokenScope(view.scope.value),
            created_at=view.created_at,
            expires_at=view.expires_at,
            last_used_at=view.last_used_at,
            revoked_at=view.revoked_at,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[ApiToken | None]:
        """The tokens `apiTokens` would list to you; nothing to an API token."""
        tenant = await info.context.tenant()
        if tenant.api_token_id is not None:
            return [None for _ in node_ids]
        async with info.context.db() as session:
            visible = {view.id.hex: view for view in await api_tokens.list_tokens(session, tenant)}
        return [cls.of(visible[node_id]) if node_id in visible else None for node_id in node_ids]


@strawberry.type
class CreatedApiToken:
    token: str = strawberry.field(
        description="Shown once: send it as `Authorization: Bearer <token>`."
    )
    api_token: ApiToken


@strawberry.type
class ApiTokenQuery:
    @strawberry.field(
        permission_classes=[IsAuthenticated, CanRead],
        description="An owner sees every token of the workspace; others their own.",
    )
    async def api_tokens(self, info: Info) -> list[ApiToken]:
        tenant = await info.context.tenant()
        async with info.context.db() as session:
            views = await api_tokens.list_tokens(session, tenant)
        return [ApiToken.of(view) for view in views]


@strawberry.type
class ApiTokenMutation:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated, CanRead],
        description="A token for scripts in this workspace; WRITE needs a role that can write.",
    )
    async def create_api_token(
        self,
        info: Info,
        name: str,
        scope: ApiTokenScope,
        expires_in_days: int | None = None,
    ) -> CreatedApiToken:
        tenant = await info.context.tenant()
        async with info.context.db() as session:
            issued = await api_tokens.create_token(
                session,
                tenant,
                name=name,
                scope=DomainScope(scope.value),
                expires_in_days=expires_in_days,
            )
        return CreatedApiToken(token=issued.token, api_token=ApiToken.of(issued.view))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated, CanRead],
        description="Its creator or an owner; takes effect on the token's next request.",
    )
    async def revoke_api_token(self, info: Info, id: strawberry.ID) -> ApiToken:
        tenant = await info.context.tenant()
        token_id = decode_id(id, "ApiToken")
        async with info.context.db() as session:
            view = await api_tokens.revoke_token(session, tenant, token_id)
        return ApiToken.of(view)
