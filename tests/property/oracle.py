"""An independent oracle for the hub's routing, written from the contract's text, not from the code.

It reads the hub config as the operator wrote it (a plain dict, the YAML's shape) and a STIX bundle
(a plain dict), and says for every (object, destination) whether the contract allows delivery, why,
and each object's effective TLP. It imports nothing from `gateway`: the marking ids below are the
published ones (STIX 2.1 section 7.2.1.4 for TLP 1.0, the OASIS TLP 2.0 extension, OpenCTI's own
AMBER+STRICT), so a typo in the code's tables shows up as a disagreement.

Contract rules implemented (shared/contract/README.md, "Routing rules, exactly"):
  1  effective TLP = strictest of the object's markings (2.0, 1.0, OpenCTI; WHITE = CLEAR), the
     sender's `tlp`; fail closed: a marking that claims TLP under an unknown id, or a reference to a
     marking the bundle does not define, is RED. A `statement` marking that says "TLP:X" is X; any
     other statement (copyright) has no TLP effect. Granular markings count for the whole object.
  2  exclude (ids, kinds) wins.  3 RED nowhere.  4-7 per level.  8 accepts only narrows.
  9  a container is withheld from d if anything it references (that is in the input) is withheld from d,
     transitively.
  11 nothing back to the system it came from; peer-hub destinations per DESIGN.md "Federation".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

LEVELS = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
CLEAR, GREEN, AMBER, AMBER_STRICT, RED = LEVELS

# Published marking ids, written out here on purpose (not imported from the code under test).
TLP2 = {
    CLEAR: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    GREEN: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    AMBER: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    AMBER_STRICT: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    RED: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
TLP1 = {
    CLEAR: "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",  # WHITE
    GREEN: "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
    AMBER: "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
    RED: "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
}
OPENCTI_AMBER_STRICT = "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37"
TLP2_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"

KNOWN_MARKINGS: dict[str, str] = {
    **{ref: level for level, ref in TLP2.items()},
    **{ref: level for level, ref in TLP1.items()},
    OPENCTI_AMBER_STRICT: AMBER_STRICT,
}
DEFINITION_TYPES = frozenset({"marking-definition", "extension-definition"})

# Which properties of which containers are references for rule 9 (STIX 2.1 sections 4 and 5).
REFERENCE_PROPERTIES: dict[str, tuple[str, ...]] = {
    "relationship": ("source_ref", "target_ref"),
    "sighting": ("sighting_of_ref", "observed_data_refs", "where_sighted_refs"),
    "report": ("object_refs",),
    "grouping": ("object_refs",),
    "note": ("object_refs",),
    "opinion": ("object_refs",),
    "observed-data": ("object_refs",),
}

_TLP_IN_STATEMENT = re.compile(r"TLP:(CLEAR|WHITE|GREEN|AMBER\+STRICT|AMBER|RED)", re.IGNORECASE)


def rank(level: str) -> int:
    return LEVELS.index(level)


def strictest(levels: Iterable[str]) -> str:
    return max(levels, key=rank, default=CLEAR)


def level_from_name(name: str) -> str:
    """An operator's TLP word: CLEAR, WHITE (TLP 1.0, = CLEAR), GREEN, AMBER, AMBER+STRICT, RED."""
    word = name.strip().upper().removeprefix("TLP:").strip()
    return CLEAR if word == "WHITE" else LEVELS[LEVELS.index(word)]


def tlp1_level(level: str) -> str:
    """TLP 1.0 has no AMBER+STRICT: the legacy marking for it is RED (never weaker)."""
    return RED if level == AMBER_STRICT else level


# --- the sender, read from the config as written ------------------------------------------------------


@dataclass(frozen=True)
class ScopeView:
    share_with: frozenset[str] | None  # None = `all`
    exclude_ids: frozenset[str]
    exclude_kinds: frozenset[str]

    @classmethod
    def read(cls, raw: Mapping[str, Any] | None) -> ScopeView:
        raw = raw or {}
        share = raw.get("share_with", "all")
        excludes = raw.get("exclude") or []
        return cls(
            share_with=None if share == "all" else frozenset(share),
            exclude_ids=frozenset(e for e in excludes if isinstance(e, str)),
            exclude_kinds=frozenset(e["kind"] for e in excludes if isinstance(e, dict)),
        )

    def names(self, dest_id: str) -> bool:
        return self.share_with is not None and dest_id in self.share_with

    def excludes(self, dest_id: str, kind: str) -> bool:
        return dest_id in self.exclude_ids or kind in self.exclude_kinds


@dataclass(frozen=True)
class SenderView:
    org: str
    community: str | None
    tlp: str
    scope: ScopeView
    origin_ids: frozenset[str]


def sender_of(config: Mapping[str, Any], connector_id: str) -> SenderView:
    """The connector's sender and choices (no e-mail members here), as the config states them."""
    connector = next(c for c in config["connectors"] if c["id"] == connector_id)
    sender = connector.get("sender") or {}
    origin: set[str] = set()
    # rule 11: a TAXII collection or a peer hub we read from is also a destination: never send back there
    # (a feed, a mailbox or a bundle folder is not a destination). The community a TAXII or peer sender
    # speaks for is that system too.
    for dest in config.get("communities", []):
        for channel in dest["deliver"]:
            if connector["type"] == "peer" and "peer" in channel:
                if channel["peer"]["public_key_env"] == connector["public_key_env"]:
                    origin.add(dest["id"])
            if connector["type"] == "taxii" and "taxii" in channel:
                same_url = channel["taxii"]["url"].rstrip("/") == connector["url"].rstrip("/")
                if same_url and channel["taxii"]["collection"] == connector["collection"]:
                    origin.add(dest["id"])
    if connector["type"] in ("peer", "taxii") and sender.get("community"):
        origin.add(sender["community"])
    return SenderView(
        org=sender.get("org", connector_id),
        community=sender.get("community"),
        tlp=level_from_name(connector["tlp"]) if connector.get("tlp") else CLEAR,
        scope=ScopeView.read(connector.get("scope")),
        origin_ids=frozenset(origin),
    )


# --- rule 1: the effective TLP --------------------------------------------------------------------------


def marking_refs(obj: Mapping[str, Any]) -> list[str]:
    refs = list(obj.get("object_marking_refs") or [])
    refs += [g["marking_ref"] for g in obj.get("granular_markings") or [] if "marking_ref" in g]
    return refs


def marking_level(ref: str, definitions: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The TLP one marking reference stands for; None when it is not about TLP (e.g. copyright)."""
    if ref in KNOWN_MARKINGS:
        return KNOWN_MARKINGS[ref]  # the id decides, whatever a definition in the bundle says
    definition = definitions.get(ref)
    if definition is None:
        return RED  # cannot see what it says: fail closed
    if definition.get("definition_type") == "statement":
        match = _TLP_IN_STATEMENT.search(str((definition.get("definition") or {}).get("statement", "")))
        return level_from_name(match.group(1)) if match else None
    if str(definition.get("definition_type", "")).lower() == "tlp":
        return RED  # claims TLP under an id that is none of the published ones
    return None


def effective_tlp(obj: Mapping[str, Any], definitions: Mapping[str, Mapping[str, Any]], sender_tlp: str) -> str:
    levels = [marking_level(ref, definitions) for ref in marking_refs(obj)]
    return strictest([sender_tlp, *(lvl for lvl in levels if lvl is not None)])


def is_tlp_ref(ref: str, definitions: Mapping[str, Mapping[str, Any]]) -> bool:
    """True for a marking the hub must replace by its own TLP 2.0 marking (every TLP dialect, unknowns)."""
    return marking_level(ref, definitions) is not None


# --- rules 2-8 and 11 for one destination ---------------------------------------------------------------


def base_decision(
    obj: Mapping[str, Any],
    level: str,
    sender: SenderView,
    dest: Mapping[str, Any],
    local_ids: frozenset[str],
) -> tuple[bool, str]:
    """(allowed, why) before rule 9, for one object and one destination community (raw config dict)."""
    dest_id, kind = dest["id"], dest["kind"]
    scope = sender.scope
    if scope.excludes(dest_id, kind):
        return False, "rule2:excluded"
    if level == RED:
        return False, "rule3:red"
    if kind == "peer-hub":
        if rank(level) > rank(AMBER):
            return False, "federation:tlp-stays-in-hub"
        reaches_beyond = scope.share_with is None or bool(scope.share_with - local_ids)
        if not reaches_beyond:
            return False, "federation:scope-within-hub"
    elif level == AMBER_STRICT:
        if not (scope.names(dest_id) and kind == "organization"):
            return False, "rule4:amber+strict"
    elif level == AMBER:
        if not scope.names(dest_id):
            return False, "rule5:amber-not-named"
    elif level == GREEN:
        if not (dest_id == sender.community or scope.share_with is None or scope.names(dest_id)):
            return False, "rule6:green-not-in-scope"
    elif not (scope.share_with is None or scope.names(dest_id)):
        return False, "rule7:clear-not-in-scope"
    accepts = dest.get("accepts") or {}
    if accepts.get("types") is not None and obj["type"] not in accepts["types"]:
        return False, "rule8:type"
    confidence = obj.get("confidence")
    if accepts.get("min_confidence") is not None and confidence is not None:
        if confidence < accepts["min_confidence"]:
            return False, "rule8:confidence"
    score = obj.get("x_cvss_base_score")
    if accepts.get("min_cvss") is not None and obj["type"] == "vulnerability" and score is not None:
        if score < accepts["min_cvss"]:
            return False, "rule8:cvss"
    if accepts.get("secret", True) is False and rank(level) >= rank(AMBER):
        return False, "rule8:no-secret"
    if dest_id in sender.origin_ids:
        return False, "rule11:origin"
    return True, "allowed"


def references(obj: Mapping[str, Any]) -> list[str]:
    refs: list[str] = []
    for prop in REFERENCE_PROPERTIES.get(obj["type"], ()):
        value = obj.get(prop)
        refs += value if isinstance(value, list) else [value] if isinstance(value, str) else []
    return refs


# --- the whole input ----------------------------------------------------------------------------------


@dataclass
class Expectation:
    """What the contract says about one input: per object its TLP, per destination what may arrive."""

    objects: dict[str, dict[str, Any]]  # counted input objects by id
    definitions: dict[str, dict[str, Any]]
    tlp: dict[str, str]
    allowed: dict[str, set[str]]  # destination id -> object ids it may receive
    reasons: dict[tuple[str, str], str] = field(default_factory=dict)  # (object, destination) -> why

    @property
    def delivered(self) -> set[str]:
        return set().union(*self.allowed.values()) if self.allowed else set()

    @property
    def withheld(self) -> set[str]:
        return set(self.objects) - self.delivered


def expect(config: Mapping[str, Any], connector_id: str, bundle: Mapping[str, Any]) -> Expectation:
    """Apply the contract to a fresh input (no earlier hops, nothing held before) from one connector."""
    sender = sender_of(config, connector_id)
    items = bundle.get("objects", [])
    definitions = {o["id"]: o for o in items if o["type"] in DEFINITION_TYPES}
    objects = {o["id"]: o for o in items if o["type"] not in DEFINITION_TYPES}
    communities = config.get("communities", [])
    local_ids = frozenset(c["id"] for c in communities if c["kind"] != "peer-hub")
    tlp = {oid: effective_tlp(o, definitions, sender.tlp) for oid, o in objects.items()}

    reasons: dict[tuple[str, str], str] = {}
    allowed: dict[str, set[str]] = {}
    for dest in communities:
        verdict = {}
        for oid, obj in objects.items():
            ok, why = base_decision(obj, tlp[oid], sender, dest, local_ids)
            verdict[oid] = ok
            reasons[(oid, dest["id"])] = why
        # rule 9, to a fixpoint: withholding spreads from referenced objects to whatever references them
        changed = True
        while changed:
            changed = False
            for oid, obj in objects.items():
                if not verdict[oid]:
                    continue
                blocked = [r for r in references(obj) if r in objects and not verdict[r]]
                if blocked:
                    verdict[oid] = False
                    reasons[(oid, dest["id"])] = f"rule9:references-withheld:{blocked[0]}"
                    changed = True
        allowed[dest["id"]] = {oid for oid, ok in verdict.items() if ok}
    return Expectation(objects=objects, definitions=definitions, tlp=tlp, allowed=allowed, reasons=reasons)


def may_reach_after_relay(
    original: ScopeView, original_level: str, original_community: str | None, dest_id: str, dest_kind: str
) -> bool:
    """Scope only narrows across hops: could the original sender's scope and TLP ever let `dest` have it?

    A necessary condition for a community served by a later hub (not a sufficient one: every relay
    may narrow further).
    """
    if original.excludes(dest_id, dest_kind) or rank(original_level) >= rank(AMBER_STRICT):
        return False
    if original_level == AMBER:
        return original.names(dest_id)
    if original_level == GREEN and dest_id == original_community:
        return True
    return original.share_with is None or original.names(dest_id)


def scope_within(narrower: ScopeView, wider: ScopeView) -> bool:
    """`narrower` names no one `wider` does not, and excludes at least what `wider` excludes."""
    if narrower.share_with is None:
        names_ok = wider.share_with is None
    else:
        names_ok = wider.share_with is None or narrower.share_with <= wider.share_with
    return names_ok and narrower.exclude_ids >= wider.exclude_ids and narrower.exclude_kinds >= wider.exclude_kinds


def is_looser(new_level: str, new_scope: ScopeView, held_level: str, held_scope: ScopeView) -> bool:
    """Rule 13: a weaker TLP, or a scope that reaches someone the held version's did not."""
    return rank(new_level) < rank(held_level) or not scope_within(new_scope, held_scope)
