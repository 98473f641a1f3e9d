"""Hypothesis strategies: hub configs (as the operator writes them) and STIX bundles with markings in every dialect.

Configs are plain dicts in the YAML's shape, so the oracle reads exactly what the operator wrote; tests
validate them with `HubConfig.model_validate` before handing them to the pipeline.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from tests.property.oracle import LEVELS, OPENCTI_AMBER_STRICT, TLP1, TLP2, TLP2_EXTENSION

KINDS = ("isac", "ceptoar", "cert", "regulator", "vendor", "organization", "peer-hub")
COMMUNITY_POOL = (
    "finance-isac",
    "power-isac",
    "ict-isac",
    "bank-b",
    "bank-c",
    "fsa",
    "jpcert",
    "vendor-x",
    "partner-hub",
    "far-hub",
)
OUTSIDE_POOL = ("overseas-cert", "remote-isac", "bank-z")  # ids served by other hubs of the federation
SENDER_ORGS = ("Bank A", "JPCERT/CC", "Hub analysts", "Power Co 1")
TLP_WORDS = (*LEVELS, "WHITE")
OBJECT_TYPES = (
    "indicator",
    "vulnerability",
    "malware",
    "identity",
    "attack-pattern",
    "ipv4-addr",
    "domain-name",
    "relationship",
    "sighting",
    "report",
    "note",
    "grouping",
    "opinion",
    "observed-data",
)
SCO_TYPES = ("ipv4-addr", "domain-name")

# The clock of every pipeline in these tests; generated timestamps are all before it.
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# --- configs ------------------------------------------------------------------------------------------


@st.composite
def accepts(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["types"] = sorted(draw(st.sets(st.sampled_from(OBJECT_TYPES), min_size=1)))
    if draw(st.booleans()):
        out["min_confidence"] = draw(st.integers(0, 100))
    if draw(st.booleans()):
        out["min_cvss"] = draw(st.integers(0, 100)) / 10
    if draw(st.booleans()):
        out["secret"] = draw(st.booleans())
    return out


@st.composite
def community(draw: st.DrawFn, community_id: str, kind: str | None = None) -> dict[str, Any]:
    kind = kind or draw(st.sampled_from(KINDS))
    if kind == "peer-hub":
        env = community_id.upper().replace("-", "_") + "_PUBLIC_KEY"
        deliver = [{"peer": {"url": f"https://{community_id}.example/peer/inbox", "public_key_env": env}}]
    else:
        deliver = [{"pull": {}}]
    out: dict[str, Any] = {"id": community_id, "kind": kind, "deliver": deliver}
    if draw(st.integers(0, 3)) > 0:  # most communities state preferences
        out["accepts"] = draw(accepts())
    if draw(st.booleans()):
        out["tlp_ids"] = ["2.0", "1.0"]
    return out


@st.composite
def scopes(draw: st.DrawFn, names: list[str]) -> dict[str, Any]:
    """`share_with: all` or some of `names`; `exclude` some ids and kinds."""
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["share_with"] = "all"
    else:
        out["share_with"] = draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
    excludes: list[Any] = draw(st.lists(st.sampled_from(names), unique=True, max_size=2))
    excludes += [{"kind": k} for k in draw(st.lists(st.sampled_from(KINDS), unique=True, max_size=2))]
    if excludes or draw(st.booleans()):
        out["exclude"] = excludes
    return out


@st.composite
def stix_connector(
    draw: st.DrawFn, community_ids: list[str], connector_id: str = "drop-folder", org: str | None = None
) -> dict[str, Any]:
    outside = list(OUTSIDE_POOL)
    sender: dict[str, Any] = {"org": org or draw(st.sampled_from(SENDER_ORGS))}
    sender_community = draw(st.one_of(st.none(), st.sampled_from(community_ids + outside)))
    if sender_community is not None:
        sender["community"] = sender_community
    out: dict[str, Any] = {"id": connector_id, "type": "stix", "sender": sender}
    if draw(st.integers(0, 3)) > 0:
        out["tlp"] = draw(st.sampled_from(TLP_WORDS))
    if draw(st.integers(0, 5)) > 0:
        out["scope"] = draw(scopes(community_ids + outside))
    return out


@st.composite
def hub_configs(draw: st.DrawFn, hub_id: str | None = None, must_have: tuple[str, ...] = ()) -> dict[str, Any]:
    """A hub with 1-6 communities of random kinds and one `stix` connector (`drop-folder`).

    `must_have` names communities that are always there (as peer hubs), e.g. the next hub in a relay test.
    """
    hub_id = hub_id or draw(st.sampled_from(("jp-hub", "hub-a", "cross-sector")))
    pool = [c for c in COMMUNITY_POOL if c not in must_have]
    ids = draw(st.lists(st.sampled_from(pool), unique=True, min_size=0 if must_have else 1, max_size=6))
    communities = [draw(community(i)) for i in ids]
    communities += [draw(community(i, kind="peer-hub")) for i in must_have]
    order = draw(st.permutations(range(len(communities))))
    communities = [communities[i] for i in order]
    return {
        "hub": {"id": hub_id, "remote": list(OUTSIDE_POOL)},
        "communities": communities,
        "connectors": [draw(stix_connector([c["id"] for c in communities]))],
    }


# --- bundles ------------------------------------------------------------------------------------------


class Ids:
    """Valid, unique `type--uuid4` ids from one drawn salt (shrinks well, never collides in a bundle)."""

    def __init__(self, salt: int) -> None:
        self.salt = salt
        self.count = 0

    def __call__(self, stix_type: str) -> str:
        self.count += 1
        return f"{stix_type}--{uuid.UUID(int=(self.salt << 32) | self.count, version=4)}"


def tlp1_definition(level: str, says: str | None = None) -> dict[str, Any]:
    word = {"CLEAR": "white"}.get(level, level.lower())
    says = says or word
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": TLP1[level],
        "created": "2017-01-20T00:00:00.000Z",
        "definition_type": "tlp",
        "name": f"TLP:{says.upper()}",
        "definition": {"tlp": says},
    }


def tlp2_definition(level: str) -> dict[str, Any]:
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": TLP2[level],
        "created": "2022-10-01T00:00:00.000Z",
        "name": f"TLP:{level}",
        "extensions": {TLP2_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": level.lower()}},
    }


OPENCTI_DEFINITION = {
    "type": "marking-definition",
    "spec_version": "2.1",
    "id": OPENCTI_AMBER_STRICT,
    "created": "2022-10-01T00:00:00.000Z",
    "definition_type": "TLP",
    "name": "TLP:AMBER+STRICT",
    "definition": {"TLP": "TLP:AMBER+STRICT"},
    "x_opencti_color": "#d84315",
}


def statement_definition(ref: str, text: str) -> dict[str, Any]:
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": ref,
        "created": "2024-04-01T00:00:00.000Z",
        "definition_type": "statement",
        "definition": {"statement": text},
    }


def unknown_tlp_definition(ref: str) -> dict[str, Any]:
    """A marking that claims to be TLP under an id that is none of the published ones: RED."""
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": ref,
        "created": "2024-04-01T00:00:00.000Z",
        "definition_type": "tlp",
        "name": "TLP:GREEN",
        "definition": {"tlp": "green"},
    }


@st.composite
def marking_pool(draw: st.DrawFn, ids: Ids) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Every marking reference objects of one bundle may use, and the definitions the bundle ships.

    Published ids (TLP 2.0, TLP 1.0, OpenCTI) are used with or without their definition in the bundle,
    TLP 1.0 ones sometimes with a definition that lies about its level (the id decides). Plus statement
    markings that say a TLP, copyright statements, a TLP marking with an unknown id, and a dangling reference.
    """
    refs = [*TLP2.values(), *TLP1.values(), OPENCTI_AMBER_STRICT]
    definitions: dict[str, dict[str, Any]] = {}
    for level in TLP2:
        if draw(st.booleans()):
            definitions[TLP2[level]] = tlp2_definition(level)
    for level in TLP1:
        shipped = draw(st.sampled_from(("absent", "honest", "lying")))
        if shipped == "honest":
            definitions[TLP1[level]] = tlp1_definition(level)
        elif shipped == "lying":
            definitions[TLP1[level]] = tlp1_definition(level, says=draw(st.sampled_from(("white", "green"))))
    if draw(st.booleans()):
        definitions[OPENCTI_AMBER_STRICT] = OPENCTI_DEFINITION
    for _ in range(draw(st.integers(0, 2))):
        ref = ids("marking-definition")
        level = draw(st.sampled_from(LEVELS))
        text = draw(st.sampled_from(("TLP:{}", "Distribution: TLP:{} only", "tlp:{}"))).format(level)
        definitions[ref] = statement_definition(ref, text)
        refs.append(ref)
    for _ in range(draw(st.integers(0, 2))):
        ref = ids("marking-definition")
        definitions[ref] = statement_definition(ref, "Copyright 2025 ACME Corp. All rights reserved.")
        refs.append(ref)
    if draw(st.booleans()):
        ref = ids("marking-definition")
        definitions[ref] = unknown_tlp_definition(ref)
        refs.append(ref)
    if draw(st.booleans()):
        refs.append(ids("marking-definition"))  # referenced, never defined: RED
    return refs, definitions


@st.composite
def timestamps(draw: st.DrawFn) -> tuple[str, str]:
    created = _EPOCH + timedelta(milliseconds=draw(st.integers(0, 5 * 365 * 86400 * 1000)))
    modified = created + timedelta(milliseconds=draw(st.integers(0, 90 * 86400 * 1000)))
    return stamp(created), stamp(modified)


@st.composite
def apply_markings(draw: st.DrawFn, obj: dict[str, Any], refs: list[str]) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(refs), unique=True, max_size=3))
    granular = draw(st.lists(st.booleans(), min_size=len(chosen), max_size=len(chosen)))
    object_level = [r for r, g in zip(chosen, granular, strict=True) if not g]
    at_part = [r for r, g in zip(chosen, granular, strict=True) if g]
    if object_level:
        obj["object_marking_refs"] = object_level
    if at_part:
        part = "name" if "name" in obj else "id"
        obj["granular_markings"] = [{"marking_ref": r, "selectors": [part]} for r in at_part]
    return obj


@dataclass
class BundleParts:
    """A bundle being built: objects in creation order (references only point backwards)."""

    ids: Ids
    objects: list[dict[str, Any]] = field(default_factory=list)

    def of_types(self, *types: str) -> list[str]:
        return [o["id"] for o in self.objects if o["type"] in types]


@st.composite
def sdo_common(draw: st.DrawFn, parts: BundleParts, stix_type: str) -> dict[str, Any]:
    created, modified = draw(timestamps())
    obj: dict[str, Any] = {
        "type": stix_type,
        "spec_version": "2.1",
        "id": parts.ids(stix_type),
        "created": created,
        "modified": modified,
    }
    if draw(st.booleans()):
        obj["confidence"] = draw(st.integers(0, 100))
    return obj


_IP = st.builds(lambda n: str(ipaddress.IPv4Address("198.51.100.0") + n), st.integers(0, 255))
_WORD = st.sampled_from(("emotet", "lockbit", "qakbot", "plugx", "shadowpad", "winnti"))


@st.composite
def core_object(draw: st.DrawFn, parts: BundleParts) -> dict[str, Any]:
    """An indicator, vulnerability, malware, identity, attack pattern, or an IPv4 / domain SCO."""
    stix_type = draw(
        st.sampled_from(("indicator", "vulnerability", "malware", "identity", "attack-pattern", *SCO_TYPES))
    )
    if stix_type == "ipv4-addr":
        return {"type": stix_type, "spec_version": "2.1", "id": parts.ids(stix_type), "value": draw(_IP)}
    if stix_type == "domain-name":
        value = f"{draw(_WORD)}-c2.example.net"
        return {"type": stix_type, "spec_version": "2.1", "id": parts.ids(stix_type), "value": value}
    obj = draw(sdo_common(parts, stix_type))
    word = draw(_WORD)
    if stix_type == "indicator":
        obj.update(
            name=f"{word} C2",
            pattern=f"[ipv4-addr:value = '{draw(_IP)}']",
            pattern_type="stix",
            valid_from=obj["created"],
            indicator_types=["malicious-activity"],
        )
    elif stix_type == "vulnerability":
        number = draw(st.integers(1000, 99999))
        obj.update(
            name=f"CVE-2025-{number}", external_references=[{"source_name": "cve", "external_id": f"CVE-2025-{number}"}]
        )
        if draw(st.integers(0, 3)) > 0:
            obj["x_cvss_base_score"] = draw(st.integers(0, 100)) / 10
    elif stix_type == "malware":
        obj.update(name=word, is_family=draw(st.booleans()))
    elif stix_type == "identity":
        obj.update(name=f"{word.title()} victim org", identity_class="organization")
    else:
        obj.update(name=f"{word} spearphishing")
    if draw(st.booleans()):
        obj["description"] = f"Observed {word} activity."
    return obj


@st.composite
def ref_to(draw: st.DrawFn, parts: BundleParts, candidates: list[str], unseen_type: str) -> str:
    """An id from the bundle, or (sometimes) one of an object the hub has never seen."""
    if candidates and draw(st.integers(0, 4)) > 0:
        return draw(st.sampled_from(candidates))
    return parts.ids(unseen_type)


@st.composite
def container_object(draw: st.DrawFn, parts: BundleParts) -> dict[str, Any]:
    """A relationship, sighting, report, note, grouping, opinion or observed-data pointing at earlier objects."""
    stix_type = draw(
        st.sampled_from(("relationship", "sighting", "report", "note", "grouping", "opinion", "observed-data"))
    )
    obj = draw(sdo_common(parts, stix_type))
    endpoints = parts.of_types("indicator", "vulnerability", "malware", "identity", "attack-pattern", *SCO_TYPES)
    sdos = parts.of_types("indicator", "vulnerability", "malware", "identity", "attack-pattern")
    anything = [o["id"] for o in parts.objects]
    many = st.integers(1, 4)
    if stix_type == "relationship":
        obj.update(
            relationship_type=draw(st.sampled_from(("indicates", "related-to", "uses", "targets"))),
            source_ref=draw(ref_to(parts, endpoints, "indicator")),
            target_ref=draw(ref_to(parts, endpoints, "malware")),
        )
    elif stix_type == "sighting":
        obj["sighting_of_ref"] = draw(ref_to(parts, sdos, "indicator"))
        if draw(st.booleans()):
            obj["where_sighted_refs"] = [draw(ref_to(parts, parts.of_types("identity"), "identity"))]
        if draw(st.booleans()):
            obj["observed_data_refs"] = [draw(ref_to(parts, parts.of_types("observed-data"), "observed-data"))]
    elif stix_type == "report":
        obj.update(
            name="Weekly summary",
            published=obj["modified"],
            report_types=["threat-report"],
            object_refs=list(dict.fromkeys(draw(ref_to(parts, anything, "indicator")) for _ in range(draw(many)))),
        )
    elif stix_type == "grouping":
        obj.update(
            context="suspicious-activity",
            object_refs=list(dict.fromkeys(draw(ref_to(parts, anything, "malware")) for _ in range(draw(many)))),
        )
    elif stix_type == "note":
        obj.update(content="Seen in our sector too.", object_refs=[draw(ref_to(parts, anything, "report"))])
    elif stix_type == "opinion":
        obj.update(
            opinion=draw(st.sampled_from(("agree", "disagree", "neutral"))),
            object_refs=[draw(ref_to(parts, anything, "report"))],
        )
    else:
        scos = parts.of_types(*SCO_TYPES)
        obj.update(
            first_observed=obj["created"],
            last_observed=obj["modified"],
            number_observed=draw(st.integers(1, 50)),
            object_refs=[draw(ref_to(parts, scos, "ipv4-addr"))],
        )
    return obj


@st.composite
def bundles(draw: st.DrawFn, max_core: int = 8, max_containers: int = 5) -> dict[str, Any]:
    """A STIX 2.1 bundle: 1-8 core objects, 0-5 containers referencing them, markings in every dialect."""
    parts = BundleParts(Ids(draw(st.integers(0, 2**60))))
    refs, definitions = draw(marking_pool(parts.ids))
    for _ in range(draw(st.integers(1, max_core))):
        parts.objects.append(draw(apply_markings(draw(core_object(parts)), refs)))
    for _ in range(draw(st.integers(0, max_containers))):
        parts.objects.append(draw(apply_markings(draw(container_object(parts)), refs)))
    items = [*definitions.values(), *parts.objects]
    order = draw(st.permutations(range(len(items))))
    return {
        "type": "bundle",
        "id": f"bundle--{uuid.UUID(int=parts.ids.salt, version=4)}",
        "objects": [items[i] for i in order],
    }
