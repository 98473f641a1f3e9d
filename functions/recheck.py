"""The policy checked again just before sending: the config may have changed since the bundle was routed.

A community's kind, a sender's exclusions or TLP, a connector or member removed: each can only withhold more
than routing did, never send more. The check reads what routing wrote on each object (the Renkei extension:
TLP, scope, hops), narrows it with the sender's current choices and runs `gateway.route.decide` for the
destination as the current config describes it; rule 9 (references) is applied within the bundle again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway import scope as scopes
from gateway.dedupe import canonical_version
from gateway.model import DEFINITION_TYPES, Decision, StixObject
from gateway.normalize import RENKEI_EXTENSION_ID, CarriedInvalid, carried
from gateway.ports import StateStore
from gateway.route import HubView, Routable, decide
from gateway.senders import sender_for
from gateway.stixjson import content_refs
from schemas.config import EmailConnector, HubConfig


@dataclass
class Recheck:
    """The bundle as it may go now (None: nothing may), and why each withheld object is withheld."""

    bundle: dict[str, Any] | None
    allowed: list[str] = field(default_factory=list)
    withheld: dict[str, str] = field(default_factory=dict)  # object id -> reason


def recheck(
    bundle: dict[str, Any], destination: str, config: HubConfig, connector_id: str, member: str | None
) -> Recheck:
    """Decide each object of `bundle` for `destination` again, under `config` as it is now."""
    objects: list[StixObject] = [o for o in bundle.get("objects", []) if isinstance(o, dict)]
    content = [
        o
        for o in objects
        if o.get("type") not in DEFINITION_TYPES and RENKEI_EXTENSION_ID in (o.get("extensions") or {})
    ]

    def everything(reason: str) -> Recheck:
        return Recheck(None, [], {str(o.get("id")): reason for o in content})

    dest = config.community(destination)
    if dest is None:
        return everything("recheck:destination-removed")
    connector = config.connector(connector_id)
    if connector is None:
        return everything("recheck:connector-removed")
    rule = None
    if member is not None:
        members = connector.members if isinstance(connector, EmailConnector) else []
        rule = next((m for m in members if m.match == member), None)
        if rule is None:
            return everything("recheck:member-removed")
    sender = sender_for(config, connector_id, rule)
    hub = HubView(config.hub.id, config.local_ids)

    decisions: dict[str, Decision] = {}
    for obj in content:
        try:
            held = carried(obj)
        except CarriedInvalid:
            decisions[obj["id"]] = Decision(False, "recheck:invalid-extension")
            continue
        if held.tlp is None or held.scope is None:
            decisions[obj["id"]] = Decision(False, "recheck:no-scope")
            continue
        # routing appended this hub to the hops it wrote; the hops before it are what routing saw
        hops = held.hops[:-1] if held.hops and held.hops[-1] == config.hub.id else held.hops
        routable = Routable(
            obj=obj,
            tlp=max(held.tlp, sender.tlp),
            scope=scopes.intersect(sender.scope, held.scope),
            hops=hops,
            named_by_sender=held.named_by_sender,
        )
        decisions[obj["id"]] = decide(routable, sender, dest, hub)

    _references(content, decisions)
    outcome = Recheck(None)
    for obj in content:
        decision = decisions[obj["id"]]
        if decision.allowed:
            outcome.allowed.append(obj["id"])
        else:
            outcome.withheld[obj["id"]] = decision.reason
    if outcome.allowed:
        # Objects without the extension (definitions, the hub's identity) are support: they go with the rest.
        in_content = {id(o) for o in content}
        kept = [o for o in objects if id(o) not in in_content or decisions[o["id"]].allowed]
        outcome.bundle = {**bundle, "objects": kept}
    return outcome


def _references(content: list[StixObject], decisions: dict[str, Decision]) -> None:
    """Rule 9 within the bundle: an object referring to one withheld now is withheld too (to a fixed point)."""
    refs = {o["id"]: content_refs(o) for o in content}
    changed = True
    while changed:
        changed = False
        for object_id, targets in refs.items():
            if decisions[object_id].allowed and any(t in decisions and not decisions[t].allowed for t in targets):
                decisions[object_id] = Decision(False, "ref:referenced-object-withheld")
                changed = True


def record_withheld(state: StateStore, bundle: dict[str, Any], destination: str, withheld: dict[str, str]) -> int:
    """Write the new decisions into the version records, so `gateway trace` tells why it did not go. Returns how many.

    Objects versioned by content (SCOs) are found only by the stamp they carry; those without one keep the
    routing decision in the state, and the deliverer's log and metrics still say they were withheld.
    """
    stamps = {
        o["id"]: canonical_version(str(o.get("modified") or o.get("created")))
        for o in bundle.get("objects", [])
        if isinstance(o, dict) and o.get("id") in withheld and (o.get("modified") or o.get("created"))
    }
    records = state.versions(stamps.items())
    for (object_id, _), record in records.items():
        record.decisions[destination] = (False, withheld[object_id])
    if records:
        state.update_versions(list(records.values()))
    return len(records)
