"""Shared GraphQL types and permission classes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, ClassVar

import strawberry
from strawberry.permission import BasePermission

from domain.core.money import Money as DomainMoney
from domain.ledger.reports import Period


@strawberry.type(description="An exact amount: a decimal string in the currency's own precision.")
class Money:
    amount: Decimal
    currency: str

    @classmethod
    def of(cls, money: DomainMoney) -> Money:
        return cls(amount=money.amount, currency=money.currency)


@strawberry.input(description="A closed date range, both ends included.")
class PeriodInput:
    start: dt.date
    end: dt.date

    def to_domain(self) -> Period:
        return Period(self.start, self.end)


@strawberry.type
class PeriodRange:
    start: dt.date
    end: dt.date


class CodedPermission(BasePermission):
    """A permission whose refusal carries `extensions.code`."""

    code: ClassVar[str] = "FORBIDDEN"

    def __init__(self) -> None:
        self.error_extensions = {"code": self.code}


class IsAuthenticated(CodedPermission):
    """A signed-in person. An API token is refused here with FORBIDDEN: tokens may use only
    fields guarded by CanRead / CanWrite alone (the ledger), never identity, sessions,
    workspaces, invitations or tokens."""

    message = "Sign in first"
    code = "UNAUTHENTICATED"

    async def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        from domain.core.errors import Unauthenticated

        try:
            await info.context.auth()
        except Unauthenticated:
            return False
        return True


class CanRead(CodedPermission):
    """A member of the current workspace, any role."""

    message = "Sign in first"
    code = "UNAUTHENTICATED"

    async def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        await info.context.tenant()  # raises UNAUTHENTICATED / NOT_FOUND with its own code
        return True


class CanWrite(CodedPermission):
    """Owners and members; viewers are read-only."""

    message = "Your role in this workspace is read-only"
    code = "FORBIDDEN"

    async def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return bool((await info.context.tenant()).can_write)


class IsOwner(CodedPermission):
    message = "Only a workspace owner can do this"
    code = "FORBIDDEN"

    async def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return (await info.context.tenant()).role == "owner"
