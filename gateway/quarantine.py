"""Quarantine: whatever must not be relayed is kept, with its bytes and a reason a person can act on."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.model import QuarantineRecord
from gateway.ports import BlobStore, StateStore


def keep_object(blobs: BlobStore, obj: Any) -> tuple[str, str | None]:
    """Store one refused object's bytes (as JSON when it can be, else as Python shows it): (raw ref, its id)."""
    try:
        raw = orjson.dumps(obj)
    except (orjson.JSONEncodeError, TypeError):
        raw = repr(obj).encode("utf-8", "backslashreplace")
    ref = blobs.put(f"quarantine/{hashlib.sha256(raw).hexdigest()}", raw)
    object_id = obj.get("id") if isinstance(obj, dict) and isinstance(obj.get("id"), str) else None
    return ref, object_id


def record(
    state: StateStore,
    now: datetime,
    connector: str,
    input_name: str,
    raw_ref: str,
    reason: str,
    detail: str,
    object_id: str | None = None,
) -> QuarantineRecord:
    """Write the quarantine record of bytes already stored at `raw_ref`."""
    held = QuarantineRecord(
        quarantine_id=f"quarantine--{uuid.uuid4()}",
        reason=reason,
        detail=detail,
        connector=connector,
        input_name=input_name,
        raw_ref=raw_ref,
        recorded_at=now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        object_id=object_id,
    )
    state.add_quarantine(held)
    return held
