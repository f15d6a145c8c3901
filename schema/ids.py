"""Relay global ids ("Type:uuid", base64) in and out of the API."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from strawberry import relay

from domain.core.errors import BadInput, NotFound


def encode_id(type_name: str, value: uuid.UUID) -> str:
    return str(relay.GlobalID(type_name, value.hex))


def decode_id(value: str, type_name: str, *, field: str = "id") -> uuid.UUID:
    """A global id of `type_name`; a plain UUID is accepted too. Wrong type: NOT_FOUND."""
    try:
        return uuid.UUID(value)
    except ValueError:
        pass
    try:
        global_id = relay.GlobalID.from_id(value)
        node_id = uuid.UUID(global_id.node_id)
    except Exception:
        raise BadInput(f"Malformed id {value!r}", field=field) from None
    if global_id.type_name != type_name:
        raise NotFound(f"{type_name} not found", field=field)
    return node_id


def decode_ids(
    values: Sequence[str] | None, type_name: str, *, field: str
) -> tuple[uuid.UUID, ...]:
    return tuple(decode_id(value, type_name, field=field) for value in values or [])
