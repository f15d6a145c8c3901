"""The canonical, versioned encodings that audit hashes and checkpoint signatures cover.

Hand-written on purpose: the bytes must stay identical across library upgrades, so they
are plain sorted-key JSON of strings and integers with a format version inside.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

from domain.core.models import as_utc

HASH_VERSION = 1
CHECKPOINT_VERSION = 1


def _moment(value: datetime) -> str:
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def event_hash(
    *,
    version: int,
    event_id: uuid.UUID,
    workspace_id: uuid.UUID,
    seq: int,
    occurred_at: datetime,
    actor_id: uuid.UUID | None,
    actor_kind: str,
    action: str,
    outcome: str,
    target_ids: list[str],
    request_id: str | None,
    ip_enc: bytes | None,
    prev_hash: str,
) -> str:
    """SHA-256 over every field of an event and the hash before it (hex)."""
    if version != HASH_VERSION:
        raise ValueError(f"Unknown audit hash version {version}")
    document = {
        "v": version,
        "id": event_id.hex,
        "workspace": workspace_id.hex,
        "seq": seq,
        "at": _moment(occurred_at),
        "actor": actor_id.hex if actor_id else None,
        "actor_kind": actor_kind,
        "action": action,
        "outcome": outcome,
        "targets": list(target_ids),
        "request": request_id,
        # The ciphertext, so verifying needs no keys.
        "ip": base64.b64encode(ip_enc).decode() if ip_enc is not None else None,
        "prev": prev_hash,
    }
    return hashlib.sha256(_canonical(document)).hexdigest()


def checkpoint_message(
    workspace_id: uuid.UUID, seq: int, head_hash: str, signed_at: datetime, key_id: str
) -> bytes:
    """What a checkpoint's Ed25519 signature covers."""
    return b"wealthwise-audit-checkpoint\n" + _canonical(
        {
            "v": CHECKPOINT_VERSION,
            "workspace": workspace_id.hex,
            "seq": seq,
            "head": head_hash,
            "at": _moment(signed_at),
            "key": key_id,
        }
    )
