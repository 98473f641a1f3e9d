"""TLP read from every dialect in the field (TLP 2.0, STIX 2.1 TLP 1.0, OpenCTI, statements) and written one way.

Reading fails closed: a marking that claims to be TLP but carries an id that is none of the known
ones counts as RED, and so does a reference to a marking-definition the hub cannot see.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.model import StixObject
from schemas.tlp import Tlp

# The OASIS TLP 2.0 extension (cti-stix-common-objects, extension-definition-specifications/tlp-2.0).
TLP2_EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP2_IDS: dict[Tlp, str] = {
    Tlp.CLEAR: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    Tlp.GREEN: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    Tlp.AMBER: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    Tlp.AMBER_STRICT: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    Tlp.RED: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
# STIX 2.1 section 7.2.1.4: the TLP 1.0 marking definitions (WHITE = CLEAR).
TLP1_IDS: dict[Tlp, str] = {
    Tlp.CLEAR: "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
    Tlp.GREEN: "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
    Tlp.AMBER: "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
    Tlp.RED: "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
}
# OpenCTI mints its own AMBER+STRICT id (it predates the OASIS extension).
OPENCTI_AMBER_STRICT_ID = "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37"

KNOWN_IDS: dict[str, Tlp] = {
    **{v: k for k, v in TLP2_IDS.items()},
    **{v: k for k, v in TLP1_IDS.items()},
    OPENCTI_AMBER_STRICT_ID: Tlp.AMBER_STRICT,
}

_TLP1_NAMES = {Tlp.CLEAR: "white", Tlp.GREEN: "green", Tlp.AMBER: "amber", Tlp.RED: "red"}
_TLP_IN_TEXT = re.compile(r"\bTLP\s*[:：]\s*(CLEAR|WHITE|GREEN|AMBER\s*\+\s*STRICT|AMBER|RED)\b", re.IGNORECASE)
_CLAIMS_TLP = re.compile(r"\btlp\b", re.IGNORECASE)
_CUSTOM_MARKING_KEY = re.compile(r"tlp|marking|classification", re.IGNORECASE)


@dataclass
class TlpReading:
    """The effective TLP of one object, and the markings that were not understood (reported, never relaxed)."""

    level: Tlp
    unknown: list[str] = field(default_factory=list)


def tlp_of_definition(definition: Mapping[str, Any]) -> Tlp | None:
    """The TLP a marking-definition object stands for; None if it is not a TLP marking (e.g. copyright).

    The id decides when it is a known one, whatever the definition says. A definition that claims TLP
    under an unknown id is RED.
    """
    known = KNOWN_IDS.get(str(definition.get("id", "")))
    if known is not None:
        return known
    if definition.get("definition_type") == "statement":
        body = definition.get("definition")
        statement = body.get("statement", "") if isinstance(body, dict) else ""
        match = _TLP_IN_TEXT.search(statement) if isinstance(statement, str) else None
        if match:
            return Tlp.parse(match.group(1))
        return Tlp.RED if _claims_tlp(definition) else None  # named like TLP, says no level: fail closed
    if _claims_tlp(definition):
        return Tlp.RED
    return None


def _claims_tlp(definition: Mapping[str, Any]) -> bool:
    if definition.get("definition_type") == "tlp":
        return True
    if TLP2_EXTENSION_ID in (definition.get("extensions") or {}):
        return True
    name = definition.get("name")
    return isinstance(name, str) and bool(_CLAIMS_TLP.search(name))


def marking_refs(obj: StixObject) -> list[str]:
    """Every marking id an object applies, at object level and in granular markings."""
    refs = [r for r in obj.get("object_marking_refs") or () if isinstance(r, str)]
    for granular in obj.get("granular_markings") or ():
        if isinstance(granular, dict) and isinstance(granular.get("marking_ref"), str):
            refs.append(granular["marking_ref"])
    return refs


def read_tlp(obj: StixObject, definitions: Mapping[str, StixObject], floor: Tlp = Tlp.CLEAR) -> TlpReading:
    """The strictest TLP among the object's markings, `floor` (the sender's TLP) and its TLP-looking fields.

    Granular markings count for the whole object: it is routed at its strictest part.
    """
    reading = TlpReading(level=floor)
    for ref in marking_refs(obj):
        level = KNOWN_IDS.get(ref)
        if level is None:
            definition = definitions.get(ref)
            if definition is None:
                reading.unknown.append(ref)  # cannot see what it says: fail closed
                level = Tlp.RED
            else:
                level = tlp_of_definition(definition)
                if level is Tlp.RED and KNOWN_IDS.get(ref) is None and _claims_tlp(definition):
                    reading.unknown.append(ref)
        if level is not None and level > reading.level:
            reading.level = level
    for level in _custom_field_levels(obj):
        reading.level = max(reading.level, level)
    return reading


def _custom_field_levels(obj: StixObject) -> Iterable[Tlp]:
    """A custom property that looks like a marking (x_tlp, x_misp_tlp…) or a `tlp:` label counts.

    Its level is taken when it names one, RED otherwise: it can only make the object stricter.
    """
    for key, value in obj.items():
        if key[:2] == "x_" and _CUSTOM_MARKING_KEY.search(key) and value not in (None, "", [], {}):
            values = value if isinstance(value, list) else [value]
            for item in values:
                level = Tlp.try_parse(item)
                if level is None and isinstance(item, str):
                    level = _level_in_text(item)
                yield Tlp.RED if level is None else level
    for label in obj.get("labels") or ():
        if isinstance(label, str) and label.lower().startswith("tlp"):
            level = Tlp.try_parse(label)
            yield Tlp.RED if level is None else level


def _level_in_text(text: str) -> Tlp | None:
    match = _TLP_IN_TEXT.search(text)
    return Tlp.parse(match.group(1)) if match else None


def is_tlp_marking(ref: str, definitions: Mapping[str, StixObject]) -> bool:
    """True for markings the hub replaces by its own: every TLP dialect, and unknown references."""
    if ref in KNOWN_IDS:
        return True
    definition = definitions.get(ref)
    return definition is None or tlp_of_definition(definition) is not None


def tlp2_definition(level: Tlp) -> StixObject:
    """The OASIS TLP 2.0 marking-definition object for a level."""
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": TLP2_IDS[level],
        "created": "2022-10-01T00:00:00.000Z",
        "name": f"TLP:{level.label}",
        "extensions": {
            TLP2_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": level.label.lower()},
        },
    }


def tlp1_equivalent(level: Tlp) -> Tlp:
    """TLP 1.0 has no AMBER+STRICT: the legacy marking is never weaker, so it becomes RED."""
    return Tlp.RED if level is Tlp.AMBER_STRICT else level


def tlp1_definition(level: Tlp) -> StixObject:
    """The STIX 2.1 TLP 1.0 marking-definition object (section 7.2.1.4)."""
    level = tlp1_equivalent(level)
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": TLP1_IDS[level],
        "created": "2017-01-20T00:00:00.000Z",
        "definition_type": "tlp",
        "name": f"TLP:{_TLP1_NAMES[level].upper()}",
        "definition": {"tlp": _TLP1_NAMES[level]},
    }


TLP2_EXTENSION_DEFINITION: StixObject = {
    "type": "extension-definition",
    "spec_version": "2.1",
    "id": TLP2_EXTENSION_ID,
    "created_by_ref": "identity--b38dfe21-7477-40d1-aa90-5c8671ce51ca",
    "created": "2022-09-22T00:00:00.000Z",
    "modified": "2022-09-22T00:00:00.000Z",
    "name": "Traffic Light Protocol (TLP) Definition Extension",
    "description": "This extension defines properties that are used when specifying TLP 2.0 markings.",
    "schema": "https://github.com/oasis-open/cti-stix-common-objects/tree/main/extension-definition-specifications/tlp-2.0/extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d.json",
    "version": "1.0.0",
    "extension_types": ["property-extension"],
}
