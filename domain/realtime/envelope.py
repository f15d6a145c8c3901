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
# The default of `Settings.realtime_channel_prefix`: the relay and the hub take it from there.
CHANNEL_PREFIX = "wealthwise:events:"


@dataclass(frozen=True)
class Envelope:
    workspace_id: uuid.UUID
    seq: int
    type: str
    data: dict[str, Any]
    at: datetime


def channel_for(workspace_id: uuid.UUID, prefix: str = CHANNEL_PREFIX) -> str:
    """The pub/sub channel of one workspace's events (the one place that names it)."""
    return f"{prefix}{workspace_id}"


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
    """Strict: a message from outside (Redis) is trusted for nothing it does not prove."""
    try:
        body = json.loads(message)
    except ValueError:
        raise EnvelopeError("Not JSON") from None
    if not isinstance(body, dict) or body.get("v") != VERSION:
        raise EnvelopeError("Not an event envelope of version 1")
    seq, kind, data, at = body.get("seq"), body.get("type"), body.get("data", {}), body.get("at")
    if type(seq) is not int or seq < 0 or not isinstance(kind, str) or not kind:
        raise EnvelopeError("Bad seq or type")
    if not isinstance(data, dict) or not isinstance(at, str):
        raise EnvelopeError("Bad data or time")
    try:
        return Envelope(
            workspace_id=uuid.UUID(str(body.get("workspace"))),
            seq=seq,
            type=kind,
            data=data,
            at=datetime.fromisoformat(at),
        )
    except ValueError as error:
        raise EnvelopeError(f"Not an event envelope: {error}") from None
