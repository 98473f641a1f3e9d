"""Status resources for POSTed objects (spec 4.3.1): every object is listed as a success or a failure."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from gateway.feedback import Outcome
from gateway.ports import StateStore

_PREFIX = "taxii-status:"


def pending_status(objects: Sequence[Any], requested: datetime | None = None) -> dict[str, Any]:
    """Saved before the objects are relayed: should the relay be cut short, the status still lists them all."""
    pendings = [
        {"id": str(o.get("id", "(no id)")) if isinstance(o, dict) else "(not an object)", "message": "being relayed"}
        for o in objects
    ]
    moment = (requested or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "id": str(uuid.uuid4()), "status": "pending", "request_timestamp": moment, "total_count": len(objects),
        "success_count": 0, "successes": [], "failure_count": 0, "failures": [],
        "pending_count": len(pendings), "pendings": pendings,
    }  # fmt: skip


def completed(pending: dict[str, Any], outcomes: Sequence[Outcome]) -> dict[str, Any]:
    def entry(o: Outcome) -> dict[str, str]:
        found = {"id": o.object_id or "(no id)", "message": o.message}
        return {**found, "version": o.version} if o.version else found

    successes = [entry(o) for o in outcomes if o.ok]
    failures = [entry(o) for o in outcomes if not o.ok]
    return {
        **pending, "status": "complete", "success_count": len(successes), "successes": successes,
        "failure_count": len(failures), "failures": failures, "pending_count": 0, "pendings": [],
    }  # fmt: skip


def save(state: StateStore, community: str, status: dict[str, Any]) -> None:
    state.put_cursor(_PREFIX + status["id"], {"community": community, "status": status})


def load(state: StateStore, community: str, status_id: str) -> dict[str, Any] | None:
    """A status resource, only for the community whose member posted it."""
    held = state.get_cursor(_PREFIX + status_id)
    if not held or held.get("community") != community:
        return None
    status: dict[str, Any] = held["status"]
    return status
