"""Errors out of the API: domain errors keep their code; anything unexpected is masked."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import structlog
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from domain.core.errors import DomainError

log = structlog.get_logger(__name__)
# PostgreSQL's query_canceled: the API engine's statement_timeout fired.
QUERY_CANCELED = "57014"
# graphql-core's wording for a value that does not fit its type (input, not query shape).
_VALUE_ERROR = re.compile(r"^Variable|^Expected value of type|cannot represent|got invalid value")


def _coded(error: GraphQLError, code: str, **extra: str) -> GraphQLError:
    return GraphQLError(
        message=error.message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={**(error.extensions or {}), "code": code, **extra},
    )


def _statement_timed_out(error: Exception) -> bool:
    """PostgreSQL's statement_timeout or our SQLite progress handler stopped a statement."""
    driver_error = getattr(error, "orig", None)
    if getattr(driver_error, "sqlstate", None) == QUERY_CANCELED:
        return True
    return isinstance(driver_error, sqlite3.OperationalError) and str(driver_error) == "interrupted"


def classify(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if isinstance(original, DomainError):
        return GraphQLError(
            message=original.message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions=original.extensions(),
        )
    if original is None or isinstance(original, GraphQLError):
        if error.extensions and "code" in error.extensions:
            return error
        if error.path is None:
            if error.message.startswith("Syntax Error"):
                return _coded(error, "GRAPHQL_PARSE_FAILED")
            if _VALUE_ERROR.search(error.message):
                return _coded(error, "BAD_USER_INPUT")
            return _coded(error, "GRAPHQL_VALIDATION_FAILED")
        return _coded(error, "BAD_USER_INPUT")
    if isinstance(original, (ValueError, TypeError)) and error.path is None:
        return _coded(error, "BAD_USER_INPUT")
    if _statement_timed_out(original):
        log.warning("statement_timeout", path=error.path)
        return GraphQLError(
            message="The operation took too long and was cancelled; nothing was changed",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "TIMEOUT"},
        )
    log.error("unexpected_error", path=error.path, exc_info=original)
    return GraphQLError(
        message="Internal server error",
        nodes=error.nodes,
        path=error.path,
        extensions={"code": "INTERNAL_SERVER_ERROR"},
    )


class ErrorCodes(SchemaExtension):
    """Every error gets `extensions.code`; stack traces and SQL never leave the server."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if result is not None and errors:
            result.errors = [classify(error) for error in errors]

    def on_stream_result(self, result: Any) -> Iterator[None]:
        """A subscription sends each result as it comes, long before `on_operation` ends:
        classify its errors before it goes (a stream that raises would otherwise send the
        exception's own text)."""
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = [classify(error) for error in errors]
        yield


class WriteIntent(SchemaExtension):
    """Mutations open a write session (SQLite: BEGIN IMMEDIATE) before any resolver runs."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        operation = self.execution_context.operation_type
        if hasattr(context, "write") and operation is not None:
            context.write = operation.value == "mutation"
        yield
