"""The audit trail at the API edge: one extension writes an event for every mutation, a
helper records reads of transactions, and owners read and seal their workspace's chain."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from enum import Enum
from http.cookies import CookieError, SimpleCookie
from typing import Any

import strawberry
import structlog
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    get_argument_values,
    get_operation_ast,
)
from graphql.execution.values import get_variable_values
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay
from strawberry.extensions import SchemaExtension

from domain.audit import service as audit
from domain.audit.models import ActorKind, AuditCheckpoint, AuditEvent, Outcome
from domain.audit.repository import AuditRepository
from domain.core.crypto import SYSTEM_OWNER
from domain.core.db import bind_scope
from domain.core.errors import DomainError, Unauthenticated
from domain.core.tenancy import Tenant
from domain.identity.service import RefreshTokenReused
from schema.common import IsOwner
from schema.context import ACCESS_COOKIE, Info, RequestContext, cookie_name
from schema.ids import decode_id, encode_id
from schema.pagination import check_first, decode_cursor, encode_cursor

READ_TRANSACTIONS = "read.transactions"
# Identity mutations are auth events on the system chain.
AUTH_ACTIONS = {
    "register": "auth.register",
    "login": "auth.login",
    "logout": "auth.logout",
    "logoutEverywhere": "auth.logout_everywhere",
    "refreshSession": "auth.refresh",
}
SIGNING_IN = {"register", "login", "refreshSession"}
DENIED_CODES = {"UNAUTHENTICATED", "FORBIDDEN"}

Action = Callable[[AsyncSession], Awaitable[object]]


@dataclasses.dataclass(frozen=True)
class Origin:
    """Who asked, from where: the parts of an event the request knows."""

    actor_id: uuid.UUID | None
    actor_kind: ActorKind
    request_id: str | None
    ip: str | None


def origin(context: RequestContext, actor_id: uuid.UUID | None = None) -> Origin:
    auth, tenant = context.resolved()
    actor = actor_id or (auth.user_id if auth else tenant.user_id if tenant else None)
    client = context.request.client
    kind = ActorKind.USER if actor else ActorKind.ANONYMOUS
    if tenant is not None and tenant.api_token_id is not None:
        kind = ActorKind.API_TOKEN  # acting for its creator, who is the actor id
    return Origin(
        actor_id=actor,
        actor_kind=kind,
        request_id=getattr(context, "request_id", None)
        or structlog.contextvars.get_contextvars().get("request_id"),
        ip=client.host if client else None,
    )


def _recorder(
    context: RequestContext,
    chain: uuid.UUID,
    who: Origin,
    action: str,
    outcome: Outcome,
    targets: list[str],
    *,
    bind: bool,
) -> Action:
    async def record(session: AsyncSession) -> None:
        if bind:  # a transaction of our own: tell row-level security which chain
            await bind_scope(session, workspace_id=chain)
        await audit.record_event(
            session,
            context.services.keyring,
            workspace_id=chain,
            action=action,
            outcome=outcome,
            actor_id=who.actor_id,
            actor_kind=who.actor_kind,
            target_ids=targets,
            request_id=who.request_id,
            ip=who.ip,
        )

    return record


def record_read(info: Info, tenant: Tenant, transaction_ids: Iterable[uuid.UUID]) -> None:
    """A "read.transactions" event naming what this resolver returns, appended in a short
    transaction of its own once the response's transaction is over; one per reader when a
    shared subscription feed read it for all its members."""
    targets = [encode_id("Transaction", i) for i in transaction_ids]
    for context in info.context.readers():
        context.persist_despite_failure(
            _recorder(
                context,
                tenant.workspace_id,
                origin(context),
                READ_TRANSACTIONS,
                Outcome.OK,
                targets,
                bind=True,
            )
        )


class AuditTrail(SchemaExtension):
    """Every mutation field writes an event: on success in the request's transaction (the
    system chain's own transaction for auth events and calls without a workspace); when
    refused or failed, in a transaction of its own that survives the rollback."""

    async def on_execute(self) -> AsyncIterator[None]:
        yield
        execution = self.execution_context
        context = execution.context
        if execution.operation_type.value != "mutation" or not isinstance(context, RequestContext):
            return
        result = execution.result
        errors: list[GraphQLError] = list(result.errors or []) if result else []
        data: dict[str, Any] = (result.data if result else None) or {}
        for key, name, arguments in _mutation_fields(execution):
            error = next((e for e in errors if e.path and e.path[0] == key), None)
            _schedule(context, name, _ids(arguments) + _ids(data.get(key)), error, bool(errors))


def _schedule(
    context: RequestContext,
    name: str,
    targets: list[str],
    error: GraphQLError | None,
    request_failed: bool,
) -> None:
    action = AUTH_ACTIONS.get(name, f"mutation.{name}")
    original = error.original_error if error else None
    if isinstance(original, RefreshTokenReused):
        action, targets = "auth.refresh_reuse", [*targets, str(original.session_id)]
    elif error is not None and name == "login":
        action = "auth.login_failed"
    outcome = _outcome(error, request_failed, auth=action.startswith("auth."))
    actor = _signed_in_user(context) if name in SIGNING_IN and outcome is Outcome.OK else None
    who = origin(context, actor)
    _auth, tenant = context.resolved()
    chain = SYSTEM_OWNER if tenant is None or action.startswith("auth.") else tenant.workspace_id
    if outcome is not Outcome.OK:
        context.persist_despite_failure(
            _recorder(context, chain, who, action, outcome, targets, bind=True)
        )
    elif chain == SYSTEM_OWNER:
        context.after_commit(_recorder(context, chain, who, action, outcome, targets, bind=True))
    else:
        context.before_commit(_recorder(context, chain, who, action, outcome, targets, bind=False))


def _outcome(error: GraphQLError | None, request_failed: bool, *, auth: bool) -> Outcome:
    if error is None:
        return Outcome.FAILED if request_failed else Outcome.OK  # rolled back with the rest
    original = error.original_error
    code = original.code if isinstance(original, DomainError) else None
    code = code or (error.extensions or {}).get("code")
    return Outcome.DENIED if code in DENIED_CODES and not auth else Outcome.FAILED


def _signed_in_user(context: RequestContext) -> uuid.UUID | None:
    """The user whose session the response just issued (register, login, refresh)."""
    if context.response is None:
        return None
    name = cookie_name(context.request, ACCESS_COOKIE)
    for header in context.response.headers.getlist("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(header)
        except CookieError:
            continue
        morsel = jar.get(name)
        if morsel is not None and morsel.value:
            try:
                return context.services.signer.verify(morsel.value).user_id
            except Unauthenticated:
                return None
    return None


def _mutation_fields(execution: Any) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(response key, field name, coerced arguments) of each top-level mutation field."""
    document = execution.graphql_document
    operation = get_operation_ast(document, execution.operation_name) if document else None
    graphql_schema = execution.schema._schema
    mutation = graphql_schema.mutation_type
    if operation is None or operation.operation is not OperationType.MUTATION or not mutation:
        return
    coerced = get_variable_values(
        graphql_schema, operation.variable_definitions or (), execution.variables or {}
    )
    if isinstance(coerced, list):  # the variables' errors failed the request already
        return
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    for node in _fields(operation.selection_set, fragments):
        definition = mutation.fields.get(node.name.value)
        if definition is None:  # __typename
            continue
        try:
            arguments = get_argument_values(definition, node, coerced)
        except Exception:  # the same error failed the field; record the call anyway
            arguments = {}
        yield (node.alias or node.name).value, node.name.value, arguments


def _fields(
    selection_set: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode]
) -> Iterator[FieldNode]:
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(selection.selection_set, fragments)
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value in fragments:
            yield from _fields(fragments[selection.name.value].selection_set, fragments)


def _is_id_key(key: str) -> bool:
    return key in ("id", "ids") or key.endswith(("Id", "Ids", "_id", "_ids"))


def _ids(value: Any, key: str = "") -> list[str]:
    """Ids named in arguments (input objects included) or in a returned payload."""
    if isinstance(value, str):
        return [value] if _is_id_key(key) else []
    if isinstance(value, dict):
        items: Iterable[tuple[str, Any]] = value.items()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
    elif isinstance(value, (list, tuple)):
        return [found for item in value for found in _ids(item, key)]
    else:
        return []
    return [found for name, item in items for found in _ids(item, name)]


@strawberry.enum(name="AuditActorKind")
class ActorKindEnum(Enum):
    USER = "user"
    API_TOKEN = "api_token"
    SYSTEM = "system"
    ANONYMOUS = "anonymous"


@strawberry.enum(name="AuditOutcome")
class OutcomeEnum(Enum):
    OK = "ok"
    DENIED = "denied"
    FAILED = "failed"


@strawberry.type(name="AuditEvent", description="One link of the workspace's audit chain.")
class AuditEventNode:
    id: strawberry.ID
    seq: int
    occurred_at: dt.datetime
    actor_id: strawberry.ID | None = strawberry.field(description="A User id, when known.")
    actor_kind: ActorKindEnum
    action: str
    outcome: OutcomeEnum
    target_ids: list[str]
    request_id: str | None
    ip: str | None
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, tenant: Tenant, event: AuditEvent) -> AuditEventNode:
        ip = None
        if event.ip_enc is not None:
            ip = tenant.cipher.open_text(event.ip_enc, audit.TABLE, "ip", event.id)
        return cls(
            id=strawberry.ID(encode_id("AuditEvent", event.id)),
            seq=event.seq,
            occurred_at=event.occurred_at,
            actor_id=strawberry.ID(encode_id("User", event.actor_id)) if event.actor_id else None,
            actor_kind=ActorKindEnum(event.actor_kind),
            action=event.action,
            outcome=OutcomeEnum(event.outcome),
            target_ids=list(event.target_ids),
            request_id=event.request_id,
            ip=ip,
            prev_hash=event.prev_hash,
            hash=event.hash,
        )


@strawberry.type
class AuditEventEdge:
    cursor: str
    node: AuditEventNode


@strawberry.type
class AuditEventConnection:
    edges: list[AuditEventEdge]
    page_info: relay.PageInfo


@strawberry.type(
    name="AuditCheckpoint",
    description="An Ed25519 signature over the chain's head; check it with "
    "`wealthwise audit public-key`.",
)
class AuditCheckpointNode:
    seq: int
    head_hash: str
    signed_at: dt.datetime
    key_id: str
    signature: str = strawberry.field(description="Base64.")

    @classmethod
    def of(cls, checkpoint: AuditCheckpoint) -> AuditCheckpointNode:
        return cls(
            seq=checkpoint.seq,
            head_hash=checkpoint.head_hash,
            signed_at=checkpoint.signed_at,
            key_id=checkpoint.key_id,
            signature=base64.b64encode(checkpoint.signature).decode(),
        )


@strawberry.type
class AuditQuery:
    @strawberry.field(
        permission_classes=[IsOwner],
        description="This workspace's audit events, newest first (owners only).",
    )
    async def audit_log(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        action: str | None = None,
        actor_id: strawberry.ID | None = None,
        since: dt.datetime | None = None,
    ) -> AuditEventConnection:
        tenant = await info.context.tenant()
        limit = check_first(first)
        key = await info.context.cursor_key()
        before = decode_cursor(key, tenant.workspace_id, after)[1] if after else None
        actor = decode_id(actor_id, "User", field="actorId") if actor_id else None
        if since is not None:  # a time without an offset is UTC
            since = since.astimezone(dt.UTC) if since.tzinfo else since.replace(tzinfo=dt.UTC)
        async with info.context.db() as session:
            rows = await AuditRepository(session).page(
                tenant.workspace_id,
                first=limit,
                before_event=before,
                action=action,
                actor_id=actor,
                since=since,
            )
        edges = [
            AuditEventEdge(
                cursor=encode_cursor(key, tenant.workspace_id, (row.occurred_at.date(), row.id)),
                node=AuditEventNode.of(tenant, row),
            )
            for row in rows[:limit]
        ]
        return AuditEventConnection(
            edges=edges,
            page_info=relay.PageInfo(
                has_next_page=len(rows) > limit,
                has_previous_page=after is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


@strawberry.type
class AuditMutation:
    @strawberry.mutation(
        permission_classes=[IsOwner],
        description="Sign this workspace's audit chain head now; returns the checkpoint.",
    )
    async def seal_audit_log(self, info: Info) -> AuditCheckpointNode:
        tenant = await info.context.tenant()
        async with info.context.db() as session:
            checkpoint = await audit.seal(
                session, info.context.services.keyring, tenant.workspace_id
            )
        return AuditCheckpointNode.of(checkpoint)
