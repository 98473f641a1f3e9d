"""The generators make valid STIX 2.1 (stix2-validator), except for the markings that are hostile on purpose."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from stix2validator import ValidationOptions, validate_instance

from tests.property.oracle import KNOWN_MARKINGS
from tests.property.strategies import bundles, tlp1_definition

OPTIONS = ValidationOptions(version="2.1")


def _hostile(obj: dict[str, Any]) -> bool:
    """A TLP 1.0 definition that lies about its level, or one that claims TLP under an unknown id."""
    if obj["type"] != "marking-definition" or str(obj.get("definition_type", "")).lower() != "tlp":
        return False
    if obj["id"] not in KNOWN_MARKINGS:
        return True
    return obj.get("definition_type") == "tlp" and obj != tlp1_definition(KNOWN_MARKINGS[obj["id"]])


@settings(max_examples=15)
@given(bundle=bundles())
def test_generated_bundles_are_valid_stix(bundle: dict[str, Any]) -> None:
    # Given a generated bundle
    ids = [o["id"] for o in bundle["objects"]]

    # Then ids are unique and every object but the deliberately hostile markings is valid STIX 2.1
    assert len(ids) == len(set(ids))
    errors = {
        obj["id"]: [str(e) for e in result.errors]
        for obj in bundle["objects"]
        if not _hostile(obj) and not (result := validate_instance(obj, OPTIONS)).is_valid
    }
    assert not errors, errors
