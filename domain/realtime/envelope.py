"""The wire form of one event on a workspace channel, shared by the relay, the hub and the
subscriptions: compact JSON `{"v":1,"workspace":..,"seq":..,"type":..,"data":..,"at":..}`."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.core.models import as_utc

VERSION = 1
CHANNEL_PREFIX = "workspace:"


@dataclass(frozen=True)
class Envelope:
    workspace_id: uuid.UUID
    seq: int
    type: str
    data: dict[str, Any]
    at: datetime


def channel_for(workspace_id: uuid.UUID) -> str:
    return f"{CHANNEL_PREFIX}{workspace_id}"


def encode(envelope: Envelope) -> str:
    body = {
        "v": VERSION,
        "workspace": str(envelope.workspace_id),
        "seq": envelope.seq,
        "type": envelope.type,
        "data": envelope.data,
        "at": as_utc(envelope.at).isoformat(),
    }
    return json.dumps(body, separators=(",", ":"))


class EnvelopeError(ValueError):
    """A message that is not an envelope of a version we read."""


def decode(message: str | bytes) -> Envelope:
    try:
        body = json.loads(message)
        if body["v"] != VERSION:
            raise EnvelopeError(f"Unknown envelope version {body['v']!r}")
        return Envelope(
            workspace_id=uuid.UUID(body["workspace"]),
            seq=int(body["seq"]),
            type=str(body["type"]),
            data=dict(body["data"]),
            at=datetime.fromisoformat(body["at"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, EnvelopeError):
            raise
        raise EnvelopeError(f"Not an event envelope: {error}") from None
