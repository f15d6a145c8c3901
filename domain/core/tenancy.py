"""The tenant a request acts for: its workspace, the caller's role and the field cipher."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from domain.core.crypto import FieldCipher
from domain.core.errors import Forbidden

WRITER_ROLES = frozenset({"owner", "member"})


@dataclass(frozen=True)
class Tenant:
    workspace_id: uuid.UUID
    base_currency: str
    cipher: FieldCipher
    user_id: uuid.UUID
    role: str
    # Set when an API token acts (for its creator, `user_id`) rather than a signed-in person.
    api_token_id: uuid.UUID | None = None

    @property
    def can_write(self) -> bool:
        return self.role in WRITER_ROLES

    def require_write(self) -> None:
        if not self.can_write:
            raise Forbidden("Your role in this workspace is read-only")

    def require_owner(self) -> None:
        if self.role != "owner":
            raise Forbidden("Only a workspace owner can do this")
