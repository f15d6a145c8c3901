"""Every encrypted column of the database, and how its associated data is formed.

Key rotation and `wealthwise keys status` walk this registry; a test fails when a model
gains an `*_enc` column that is not listed here, so rotation cannot miss one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Column, ColumnElement, Table, and_, func, literal, or_, true
from sqlalchemy.types import LargeBinary
from sqlmodel import SQLModel

from domain.advisor.models import AdvisorMessage, AdvisorThread
from domain.audit.models import AuditEvent
from domain.core.crypto import SYSTEM_OWNER, ciphertext_header
from domain.identity.models import ApiToken, User, Workspace
from domain.ledger.models import Account, Budget, MonthTotal, Posting, Transaction

# "workspace_id": the row's workspace owns it; "id": the row is the workspace itself;
# "system": the system owner's key (user PII, shared by every workspace of a user).
OwnerColumn = Literal["workspace_id", "id", "system"]
HEADER_LENGTH = len(ciphertext_header(0))


@dataclass(frozen=True)
class EncryptedTable:
    """A table with sealed fields: `<field>_enc` holds `field`, bound to
    table | field | row id | owner."""

    model: type[SQLModel]
    fields: tuple[str, ...]
    owner: OwnerColumn

    @property
    def table(self) -> Table:
        table: Table = self.model.__table__  # type: ignore[attr-defined]
        return table

    @property
    def name(self) -> str:
        return self.table.name

    def column(self, field: str) -> Column[bytes]:
        column: Column[bytes] = self.table.c[f"{field}_enc"]
        return column

    def belongs_to(self, owner: uuid.UUID) -> bool:
        return (self.owner == "system") == (owner == SYSTEM_OWNER)

    def owner_filter(self, owner: uuid.UUID) -> ColumnElement[bool]:
        if self.owner == "system":
            return true()
        return self.table.c[self.owner] == owner

    def owner_expression(self) -> ColumnElement[uuid.UUID]:
        if self.owner == "system":
            return literal(SYSTEM_OWNER, self.table.c.id.type)
        expression: ColumnElement[uuid.UUID] = self.table.c[self.owner]
        return expression

    def sealed_under_other_key(self, key_id: int) -> ColumnElement[bool]:
        """Rows with a field sealed under any key but `key_id` (read from the header)."""
        header = literal(ciphertext_header(key_id), LargeBinary)
        return or_(
            *(
                and_(self.column(field).is_not(None), header_of(self.column(field)) != header)
                for field in self.fields
            )
        )


def header_of(column: ColumnElement[bytes]) -> ColumnElement[bytes]:
    expression: ColumnElement[bytes] = func.substr(column, 1, HEADER_LENGTH, type_=LargeBinary)
    return expression


ENCRYPTED: tuple[EncryptedTable, ...] = (
    EncryptedTable(User, ("email", "name"), "system"),
    EncryptedTable(Workspace, ("name",), "id"),
    EncryptedTable(Account, ("name", "number", "institution", "opening_balance"), "workspace_id"),
    EncryptedTable(Transaction, ("amount", "payee", "narration", "notes"), "workspace_id"),
    EncryptedTable(Posting, ("amount", "memo"), "workspace_id"),
    EncryptedTable(MonthTotal, ("amount",), "workspace_id"),
    EncryptedTable(ApiToken, ("name",), "workspace_id"),
    EncryptedTable(Budget, ("amount",), "workspace_id"),
    EncryptedTable(AdvisorThread, ("title",), "workspace_id"),
    EncryptedTable(AdvisorMessage, ("content", "tool_calls", "citations", "flags"), "workspace_id"),
)

# Sealed once and never re-encrypted: the audit trail is append-only (a trigger refuses
# UPDATE) and its hash chain covers the ciphertext. Rotation leaves these under the key
# that sealed them; `purge-retired` keeps any retired key they still name.
APPEND_ONLY: tuple[EncryptedTable, ...] = (EncryptedTable(AuditEvent, ("ip",), "workspace_id"),)


def tables_of(owner: uuid.UUID) -> Iterator[EncryptedTable]:
    return (table for table in ENCRYPTED if table.belongs_to(owner))
