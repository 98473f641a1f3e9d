"""Routing: the pure decision `(object, sender, destination) -> Decision`, contract rules 2-8 and 11.

Rule 1 (the effective TLP) and the scope carried across hops are computed by `normalize`; rule 9
(references) needs the whole graph and lives in `references`; rule 13 in `dedupe`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.model import Decision, SenderPolicy, StixObject
from schemas.config import Community, Scope
from schemas.tlp import Tlp


@dataclass(frozen=True)
class Routable:
    """What routing needs to know about one normalised object."""

    obj: StixObject
    tlp: Tlp
    scope: Scope
    hops: tuple[str, ...]  # hubs it passed through before this one
    # Did the original sender name the destinations? A relay's own scope narrows `share_with: all` to a
    # list, but that list names no one for AMBER: only the sender can name (rules 4 and 5).
    named_by_sender: bool = True


@dataclass(frozen=True)
class HubView:
    """The parts of the hub config that routing reads."""

    hub_id: str
    local_ids: frozenset[str]  # communities this hub serves (all but peer hubs)


def decide(item: Routable, sender: SenderPolicy, dest: Community, hub: HubView) -> Decision:
    """Whether `item` may go to `dest`. A denial is a value with a reason, never an exception."""
    if hub.hub_id in item.hops:
        return Decision(False, "loop:hub-in-hop-list")
    scope = item.scope
    if dest.id in scope.excluded_ids:
        return Decision(False, "scope:excluded")
    if dest.kind in scope.excluded_kinds:
        return Decision(False, f"scope:excluded-kind:{dest.kind}")
    if item.tlp is Tlp.RED:
        return Decision(False, "tlp:red")
    if dest.kind == "peer-hub":
        verdict = _peer_hub(item, dest, hub)
    else:
        verdict = _community(item, sender, dest)
    if not verdict.allowed:
        return verdict
    narrowed = _accepts(item, dest)
    if narrowed is not None:
        return narrowed
    if dest.id in sender.origin_ids:
        return Decision(False, "origin:source-system")
    if dest.peer_hub_ids & set(item.hops):
        return Decision(False, "loop:peer-in-hop-list")
    return verdict


def decision_key(item: Routable, scope_key: bytes) -> tuple[Any, ...] | None:
    """Everything `decide` reads of an item, so equal keys get equal decisions (for one sender and hub).

    None where that is not cheap to say (a vulnerability's CVSS can sit in several places): decide anew.
    Keep this next to `decide`: a property read there and missing here would share a wrong decision.
    """
    obj = item.obj
    if obj.get("type") == "vulnerability":
        return None
    return (item.tlp, scope_key, item.hops, item.named_by_sender, obj.get("type"), obj.get("confidence"))


def _community(item: Routable, sender: SenderPolicy, dest: Community) -> Decision:
    """Rules 4-7: what each TLP level lets through, for a community served by this hub."""
    scope = item.scope
    listed = not scope.shares_with_all and dest.id in scope.share_with
    named = listed and item.named_by_sender
    if item.tlp is Tlp.AMBER_STRICT:
        if not named:
            return Decision(False, "tlp:amber+strict-not-in-scope")
        if dest.kind != "organization":
            return Decision(False, "tlp:amber+strict-not-organization")
        return Decision(True, "tlp:amber+strict-named-organization")
    if item.tlp is Tlp.AMBER:
        return Decision(True, "tlp:amber-in-scope") if named else Decision(False, "tlp:amber-not-in-scope")
    if item.tlp is Tlp.GREEN:
        if sender.community is not None and dest.id == sender.community:
            return Decision(True, "tlp:green-own-community")
        if listed or scope.shares_with_all:
            return Decision(True, "tlp:green-in-scope")
        return Decision(False, "tlp:green-not-in-scope")
    if listed or scope.shares_with_all:
        return Decision(True, "tlp:clear-in-scope")
    return Decision(False, "scope:not-shared-with")


def _peer_hub(item: Routable, dest: Community, hub: HubView) -> Decision:
    """Federation: a peer hub is a route, not an audience (DESIGN.md, "Federation")."""
    if item.tlp > Tlp.AMBER:
        return Decision(False, "peer:tlp-stays-in-hub")
    scope = item.scope
    if scope.shares_with_all:
        # As the contract says, even for AMBER: the next hub applies rule 5 and names no one from `all`.
        return Decision(True, "peer:scope-all")
    names = set(scope.share_with)
    if names & dest.peer_hub_ids:
        return Decision(True, "peer:named")
    if names - hub.local_ids:
        return Decision(True, "peer:scope-reaches-beyond-hub")
    return Decision(False, "peer:scope-within-hub")


def _accepts(item: Routable, dest: Community) -> Decision | None:
    """Rule 8: a community's preferences only narrow."""
    accepts = dest.accepts
    obj = item.obj
    if accepts.types is not None and obj.get("type") not in accepts.types:
        return Decision(False, "accepts:type")
    if accepts.min_confidence is not None:
        confidence = obj.get("confidence")
        if isinstance(confidence, int | float) and confidence < accepts.min_confidence:
            return Decision(False, "accepts:min-confidence")
    if accepts.min_cvss is not None and obj.get("type") == "vulnerability":
        score = cvss_base_score(obj)
        if score is not None and score < accepts.min_cvss:
            return Decision(False, "accepts:min-cvss")
    if not accepts.secret and item.tlp >= Tlp.AMBER:
        return Decision(False, "accepts:no-secret")
    return None


_CVSS_KEYS = (
    "x_cvss_base_score",
    "x_opencti_cvss_base_score",
    "x_cvss_score",
    "cvss_base_score",
    "base_score",
)


def cvss_base_score(obj: Mapping[str, Any]) -> float | None:
    """The CVSS base score of a vulnerability, from the custom properties feeds and OpenCTI use.

    Looks at top-level `x_cvss_base_score` and friends, `x_cvss: {base_score}`, and property extensions.
    The highest score found wins (if two sources disagree, the more severe one is not filtered away).
    """
    scores: list[float] = []
    places: list[Mapping[str, Any]] = [obj]
    if isinstance(obj.get("x_cvss"), dict):
        places.append(obj["x_cvss"])
    places.extend(e for e in (obj.get("extensions") or {}).values() if isinstance(e, dict))
    for place in places:
        for key in _CVSS_KEYS:
            value = place.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 10:
                scores.append(float(value))
    return max(scores) if scores else None
