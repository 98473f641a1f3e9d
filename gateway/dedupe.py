"""Dedupe and follow-ups: `id` + version decides new / update / duplicate / stale, and spots what must not pass.

Contract rule 13: a later version looser than what the hub holds (weaker TLP, wider scope) is
accepted only from the connector and sender of the earlier version; the same version with other
content is a conflict. Both are quarantined, never treated as duplicates.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from gateway import scope as scopes
from gateway.model import SenderPolicy, VersionRecord
from gateway.route import Routable
from schemas.tlp import Tlp


class Verdict(Enum):
    NEW = "new"
    UPDATE = "update"
    DUPLICATE = "duplicate"
    STALE = "stale"
    CONFLICT = "version:conflict"
    LOOSENED = "policy:loosened-by-other-sender"

    @property
    def routable(self) -> bool:
        return self in (Verdict.NEW, Verdict.UPDATE)

    @property
    def quarantined(self) -> bool:
        return self in (Verdict.CONFLICT, Verdict.LOOSENED)


def canonical_version(stamp: str) -> str:
    """A version key that sorts as a string: `...05Z` and `...05.000Z` are the same instant."""
    if stamp.startswith("sha256:"):
        return stamp
    if len(stamp) == 24 and stamp[19] == "." and stamp[23] == "Z":  # the common millisecond form: no parsing
        return stamp[:23] + "000Z"
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def classify(
    version: str,
    digest: str,
    item: Routable,
    sender: SenderPolicy,
    latest: VersionRecord | None,
    same: VersionRecord | None,
) -> Verdict:
    """Where one incoming object version stands against what the hub already holds."""
    if same is not None:
        if same.content_hash != digest:
            return Verdict.CONFLICT
        return Verdict.LOOSENED if _loosened_by_other(item, sender, same) else Verdict.DUPLICATE
    if latest is None:
        return Verdict.NEW
    if version.startswith("sha256:") or version > latest.version:
        return Verdict.LOOSENED if _loosened_by_other(item, sender, latest) else Verdict.UPDATE
    return Verdict.STALE


def _loosened_by_other(item: Routable, sender: SenderPolicy, held: VersionRecord) -> bool:
    same_sender = held.connector == sender.connector_id and held.sender_org == sender.org
    return not same_sender and is_looser(item, held)


def is_looser(item: Routable, held: VersionRecord) -> bool:
    """A weaker TLP, or a scope that reaches someone the held version did not."""
    return item.tlp < Tlp.parse(held.tlp) or not scopes.is_within(item.scope, scopes.from_json(held.scope))
