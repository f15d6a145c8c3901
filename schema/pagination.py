"""Opaque keyset cursors, signed and bound to the workspace that issued them."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import uuid

from domain.core.errors import BadInput

MAX_FIRST = 100
DEFAULT_FIRST = 20


def _signature(key: bytes, workspace_id: uuid.UUID, payload: str) -> str:
    message = f"{workspace_id.hex}|{payload}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def encode_cursor(key: bytes, workspace_id: uuid.UUID, position: tuple[dt.date, uuid.UUID]) -> str:
    payload = f"{position[0].isoformat()}|{position[1].hex}"
    token = f"{payload}|{_signature(key, workspace_id, payload)}"
    return base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


def decode_cursor(key: bytes, workspace_id: uuid.UUID, cursor: str) -> tuple[dt.date, uuid.UUID]:
    invalid = BadInput("Invalid cursor", field="after")
    try:
        token = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        day, row_id, signature = token.split("|")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid from None
    payload = f"{day}|{row_id}"
    expected = _signature(key, workspace_id, payload)
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise invalid
    try:
        return dt.date.fromisoformat(day), uuid.UUID(row_id)
    except ValueError:
        raise invalid from None


def check_first(first: int | None) -> int:
    if first is None:
        return DEFAULT_FIRST
    if not 1 <= first <= MAX_FIRST:
        raise BadInput(f"first must be between 1 and {MAX_FIRST}", field="first")
    return first
