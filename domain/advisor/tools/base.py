"""The advisor's tool interface: context, result, errors, the retrieval port, and a base
class that derives each tool's JSON Schema from a pydantic model of its arguments.

Tools are deterministic: the same ledger, arguments and `today` give the same result.
Money in a result is always `{"amount": "1234.50", "currency": "INR"}` (exact decimal
strings in the currency's own precision); every ledger tool names the transactions its
figures came from in `ToolResult.transaction_ids`.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.core.errors import DomainError
from domain.core.money import Money
from domain.core.tenancy import Tenant

# --- the retrieval port (implemented by domain/advisor/retrieval) -------------------------


@dataclass(frozen=True)
class SearchHit:
    transaction_id: uuid.UUID
    score: float


class TransactionSearch(Protocol):
    async def search(
        self,
        workspace_id: uuid.UUID,
        query: str,
        *,
        limit: int = 10,
        start: dt.date | None = None,
        end: dt.date | None = None,
        account_ids: Sequence[uuid.UUID] = (),
        category_ids: Sequence[uuid.UUID] = (),
    ) -> list[SearchHit]: ...


# --- context, result, errors -------------------------------------------------------------


@dataclass(frozen=True)
class ToolContext:
    session: AsyncSession  # already bound to the workspace (bind_scope)
    tenant: Tenant
    today: dt.date  # "last month" and defaults such as `as_of` are relative to this
    search: TransactionSearch | None = None


@dataclass(frozen=True)
class ToolResult:
    data: dict[str, Any]  # JSON-able
    transaction_ids: tuple[uuid.UUID, ...] = ()  # the citations; empty for pure math tools


class ToolInputError(DomainError):
    """The arguments are wrong (unknown name, bad date, out of range); nothing changed."""

    code = "BAD_USER_INPUT"


class ToolUnavailable(ToolInputError):
    """The tool cannot run in this context (say, no search index is configured)."""

    code = "TOOL_UNAVAILABLE"


class Tool(Protocol):
    name: str
    description: str
    input_schema: dict[str, Any]

    async def run(self, ctx: ToolContext, arguments: Mapping[str, Any]) -> ToolResult: ...


# --- money in results ------------------------------------------------------------------


def money(value: Money) -> dict[str, str]:
    return {"amount": str(value.amount), "currency": value.currency}


def minor_money(minor: int, currency: str) -> dict[str, str]:
    return money(Money(minor, currency))


def percent(numerator: int | Decimal, denominator: int | Decimal) -> str | None:
    """A ratio as a percentage with two decimals (None when the denominator is zero)."""
    if not denominator:
        return None
    return str((Decimal(numerator) * 100 / Decimal(denominator)).quantize(Decimal("0.01")))


# --- argument models and their JSON Schema ------------------------------------------------


class Arguments(BaseModel):
    """Base of every tool's arguments: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


A = TypeVar("A", bound=Arguments)


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """The model's JSON Schema with `$ref`s inlined and pydantic's titles dropped: flat
    schemas are what LLM tool APIs handle best. Hand-written: pydantic has no such mode."""
    definitions = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                target = definitions[node["$ref"].rsplit("/", 1)[-1]]
                merged = {**copy.deepcopy(target), **{k: v for k, v in node.items() if k != "$ref"}}
                return walk(merged)
            return {key: walk(value) for key, value in node.items() if key != "title"}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    inlined: dict[str, Any] = walk(schema)
    return inlined


def _message(error: ValidationError) -> tuple[str, str | None]:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    text = first["msg"]
    if first["type"] == "extra_forbidden":
        text = "is not an argument of this tool"
    return (f"{location}: {text}" if location else text), (location or None)


class ModelTool(Generic[A]):
    """A tool whose arguments are a pydantic model; `input_schema` is derived from it."""

    name: str
    description: str
    arguments: type[A]

    def __init__(self) -> None:
        self.input_schema: dict[str, Any] = _inline(self.arguments.model_json_schema())

    def parse(self, arguments: Mapping[str, Any]) -> A:
        if not isinstance(arguments, Mapping):
            raise ToolInputError("Tool arguments are a JSON object")
        try:
            parsed = self.arguments.model_validate(dict(arguments))
        except ValidationError as error:
            message, field = _message(error)
            raise ToolInputError(f"{self.name}: {message}", field=field) from None
        return parsed

    async def run(self, ctx: ToolContext, arguments: Mapping[str, Any]) -> ToolResult:
        return await self.compute(ctx, self.parse(arguments))

    async def compute(self, ctx: ToolContext, args: A) -> ToolResult:
        raise NotImplementedError
