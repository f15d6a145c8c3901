"""The one error tree of the domain; the GraphQL layer maps `code` to `extensions.code`."""

from __future__ import annotations


class DomainError(Exception):
    """An error the client caused or may see; carries a stable machine-readable code."""

    code = "BAD_USER_INPUT"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def extensions(self) -> dict[str, str]:
        extensions = {"code": self.code}
        if self.field is not None:
            extensions["field"] = self.field
        return extensions


class BadInput(DomainError):
    code = "BAD_USER_INPUT"


class WebSocketRequired(BadInput):
    code = "WEBSOCKET_REQUIRED"

    def __init__(
        self,
        message: str = "Subscriptions are served over WebSocket (graphql-transport-ws) at /graphql",
        *,
        field: str | None = None,
    ) -> None:
        super().__init__(message, field=field)


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class NotFound(DomainError):
    code = "NOT_FOUND"


class Conflict(DomainError):
    code = "CONFLICT"
