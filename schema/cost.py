"""What a GraphQL operation costs, estimated from its parsed document before anything runs.

Every field costs 1; a connection's `edges`/`nodes` subtree counts `first` times (default and
cap from schema/pagination.py); any other list of objects counts LIST_FACTOR times; each root
mutation field adds MUTATION_COST. No library estimates cost for graphql-core documents, so
this walk is ours. The ceiling refuses an operation before it runs (QUERY_TOO_COMPLEX); the
budget itself is charged by the rate limiter behind the `CostGate` port (api/ratelimit.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    get_operation_ast,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from strawberry.extensions import SchemaExtension

from schema.pagination import DEFAULT_FIRST, MAX_FIRST

if TYPE_CHECKING:
    from schema.context import RequestContext

MUTATION_COST = 10
# Root fields far dearer than their selection: a question runs tools and maybe a paid model
# (with the default budget of 3,000 a minute: 6 questions a minute, 20 in a burst).
FIELD_SURCHARGES: dict[str, int] = {"askAdvisor": 500}
LIST_FACTOR = 5  # the size we expect of a list that is not paged (postings, tags, accounts)
PAGED_FIELDS = frozenset({"edges", "nodes"})
# Root mutations that guess or spend credentials, and the argument naming their target.
AUTH_FIELDS: dict[str, str | None] = {
    "login": "email",
    "register": "email",
    "acceptInvitation": "token",
    "refreshSession": None,  # its target is the refresh cookie
}


@dataclass(frozen=True)
class AuthAttempt:
    field: str
    target: str | None


@dataclass(frozen=True)
class OperationCharge:
    cost: int
    operation: OperationType | None
    auth_attempts: tuple[AuthAttempt, ...] = ()


class CostGate(Protocol):
    """Charges an operation to the caller's budgets; raises a RATE_LIMITED error if spent."""

    async def admit(self, context: RequestContext, charge: OperationCharge) -> None: ...


def query_too_complex(cost: int, ceiling: int) -> GraphQLError:
    return GraphQLError(
        f"The operation is too complex: estimated cost {cost}, at most {ceiling} allowed",
        extensions={"code": "QUERY_TOO_COMPLEX", "cost": cost, "maxCost": ceiling},
    )


def estimate(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: dict[str, Any] | None,
) -> OperationCharge:
    """The cost of the operation that `operation_name` selects in a validated document."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return OperationCharge(cost=1, operation=None)
    coerced = get_variable_values(schema, operation.variable_definitions or (), variables or {})
    walker = _Walker(schema, document, None if isinstance(coerced, list) else coerced)
    root = schema.get_root_type(operation.operation)
    assert root is not None  # validation checked that the schema has this operation
    cost = 0
    attempts: list[AuthAttempt] = []
    for owner, node in walker.fields(root, operation.selection_set):
        cost += walker.field_cost(owner, node)
        cost += FIELD_SURCHARGES.get(node.name.value, 0)
        if operation.operation is OperationType.MUTATION:
            cost += MUTATION_COST
            if node.name.value in AUTH_FIELDS:
                attempts.append(walker.auth_attempt(owner, node))
    return OperationCharge(max(cost, 1), operation.operation, tuple(attempts))


class _Walker:
    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, variables: VariableValues | None
    ) -> None:
        self.schema = schema
        self.variables = variables
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }

    def fields(
        self, parent: Any, selection_set: SelectionSetNode
    ) -> Iterator[tuple[Any, FieldNode]]:
        """Each field node with the type it is selected on, through fragments (all of them:
        an estimate may overcount abstract types, never undercount)."""
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield parent, selection
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                owner = self.schema.get_type(condition.name.value) if condition else parent
                yield from self.fields(owner, selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments[selection.name.value]
                owner = self.schema.get_type(fragment.type_condition.name.value)
                yield from self.fields(owner, fragment.selection_set)

    def field_cost(self, parent: Any, node: FieldNode, *, per_item: bool = False) -> int:
        name = node.name.value
        # Introspection is answered from memory, bounded by the schema's size.
        if name.startswith("__") or node.selection_set is None:
            return 1
        definition = self._definition(parent, name)
        if definition is None:
            return 1
        field_type = definition.type
        if isinstance(field_type, GraphQLNonNull):
            field_type = field_type.of_type
        named = get_named_type(field_type)
        if named.name.endswith("Connection") and "first" in definition.args:
            first = self._first(definition, node)
            cost = 1
            for owner, child in self.fields(named, node.selection_set):
                if child.name.value in PAGED_FIELDS:  # a list of `first` items, not LIST_FACTOR
                    cost += first * self.field_cost(owner, child, per_item=True)
                else:
                    cost += self.field_cost(owner, child)
            return cost
        children = self.fields(named, node.selection_set)
        inner = sum(self.field_cost(owner, child) for owner, child in children)
        many = isinstance(field_type, GraphQLList) and not per_item
        return 1 + (LIST_FACTOR * inner if many else inner)

    def auth_attempt(self, parent: Any, node: FieldNode) -> AuthAttempt:
        name = node.name.value
        argument = AUTH_FIELDS[name]
        definition = self._definition(parent, name)
        target = None
        if argument is not None and definition is not None:
            value = self._arguments(definition, node).get(argument)
            target = value.strip().lower() if isinstance(value, str) else None
        return AuthAttempt(field=name, target=target)

    def _first(self, definition: GraphQLField, node: FieldNode) -> int:
        first = self._arguments(definition, node).get("first", MAX_FIRST)
        if first is None:
            return DEFAULT_FIRST
        if not isinstance(first, int):
            return MAX_FIRST
        return min(max(first, 1), MAX_FIRST)

    def _arguments(self, definition: GraphQLField, node: FieldNode) -> dict[str, Any]:
        if self.variables is None:  # variables that do not coerce: execution will refuse them
            return {}
        try:
            return get_argument_values(definition, node, self.variables)
        except GraphQLError:
            return {}

    @staticmethod
    def _definition(parent: Any, name: str) -> GraphQLField | None:
        if isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)):
            return parent.fields.get(name)
        return None


class OperationCost(SchemaExtension):
    """Estimates each operation's cost, refuses one above the ceiling and charges the rest to
    the caller's rate-limit budgets, all before any resolver runs."""

    cost: int | None = None

    async def on_operation(self) -> AsyncIterator[None]:
        self.cost = None
        try:
            yield
        except Exception:  # e.g. the parser cache raises a syntax error through this hook
            await self._charge_failure()
            raise
        await self._charge_failure()

    async def _charge_failure(self) -> None:
        """Documents that fail to parse or validate run nothing but still cost some work."""
        context = self.execution_context.context
        gate = _gate(context)
        if self.cost is None and gate is not None:
            await gate.admit(context, OperationCharge(cost=1, operation=None))

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context = execution.context
        assert execution.graphql_document is not None
        charge = estimate(
            execution.schema._schema,
            execution.graphql_document,
            execution.operation_name,
            execution.variables,
        )
        self.cost = charge.cost
        services = getattr(context, "services", None)
        gate = _gate(context)
        if services is not None and charge.cost > services.settings.rate_limit_max_cost:
            if gate is not None:  # refused, not free: a flood of them is still limited
                await gate.admit(context, OperationCharge(cost=1, operation=None))
            if getattr(context, "response", None) is not None:
                context.response.status_code = 400
            raise query_too_complex(charge.cost, services.settings.rate_limit_max_cost)
        if gate is not None:
            await gate.admit(context, charge)
        yield

    def get_results(self) -> dict[str, Any]:
        return {} if self.cost is None else {"cost": {"estimated": self.cost}}


def _gate(context: Any) -> CostGate | None:
    services = getattr(context, "services", None)
    return getattr(services, "limiter", None)
