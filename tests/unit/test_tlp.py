"""TLP read from every dialect (TLP 2.0, TLP 1.0, OpenCTI, statements, custom fields), failing closed."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from gateway.tlp import (
    KNOWN_IDS,
    OPENCTI_AMBER_STRICT_ID,
    TLP1_IDS,
    TLP2_EXTENSION_ID,
    TLP2_IDS,
    is_tlp_marking,
    marking_refs,
    read_tlp,
    tlp1_definition,
    tlp1_equivalent,
    tlp2_definition,
    tlp_of_definition,
)
from schemas.tlp import Tlp

_NS = uuid.UUID("5b1f0d6e-3c44-4e0a-9d7a-1f2e3d4c5b6a")
T0 = "2026-11-01T00:00:00.000Z"


def mid(name: str) -> str:
    """A deterministic marking-definition id that is none of the known TLP ids."""
    return f"marking-definition--{uuid.uuid5(_NS, name)}"


def obj(*refs: str, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.uuid5(_NS, 'indicator')}",
        "created": T0,
        "modified": T0,
    }
    if refs:
        out["object_marking_refs"] = list(refs)
    out.update(extra)
    return out


def statement(key: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": mid(key),
        "created": T0,
        "definition_type": "statement",
        "definition": {"statement": text},
        **extra,
    }


def defs(*definitions: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in definitions}


# --- every known id of every dialect ------------------------------------------------------------------

KNOWN = [
    *((f"tlp2-{level.label}", ref, level) for level, ref in TLP2_IDS.items()),
    *((f"tlp1-{level.label}", ref, level) for level, ref in TLP1_IDS.items()),
    ("opencti-amber+strict", OPENCTI_AMBER_STRICT_ID, Tlp.AMBER_STRICT),
]


@pytest.mark.parametrize(("ref", "level"), [(r, lvl) for _, r, lvl in KNOWN], ids=[n for n, _, _ in KNOWN])
def test_known_id_gives_its_level_without_seeing_the_definition(ref: str, level: Tlp) -> None:
    # Given an object marked with a known TLP id, and no definition object in the bundle
    marked = obj(ref)

    # When
    reading = read_tlp(marked, {})

    # Then
    assert reading.level is level
    assert reading.unknown == []


def test_known_ids_are_exactly_the_ten_of_the_three_dialects() -> None:
    # Given / When / Then
    assert len(KNOWN_IDS) == 10
    assert TLP1_IDS[Tlp.CLEAR] == "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"  # TLP 1.0 WHITE
    assert KNOWN_IDS["marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"] is Tlp.CLEAR
    assert Tlp.AMBER_STRICT not in TLP1_IDS


@pytest.mark.parametrize("level", list(Tlp))
def test_the_definitions_the_hub_writes_read_back_as_their_level(level: Tlp) -> None:
    # Given / When / Then
    assert tlp_of_definition(tlp2_definition(level)) is level
    assert tlp_of_definition(tlp1_definition(level)) is tlp1_equivalent(level)


def test_tlp2_definition_is_the_oasis_object() -> None:
    # Given / When
    definition = tlp2_definition(Tlp.AMBER_STRICT)

    # Then
    assert definition["id"] == "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"
    assert definition["name"] == "TLP:AMBER+STRICT"
    assert definition["extensions"] == {
        TLP2_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": "amber+strict"}
    }


# --- statement markings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("Shared under TLP:AMBER+STRICT only", Tlp.AMBER_STRICT),
        ("TLP: GREEN", Tlp.GREEN),
        ("tlp:red", Tlp.RED),
        ("TLP：AMBER (full-width colon)", Tlp.AMBER),
        ("tlp:clear", Tlp.CLEAR),
    ],
)
def test_statement_that_names_a_tlp_level_counts_as_that_level(text: str, level: Tlp) -> None:
    # Given a statement marking (unknown id) whose text names a TLP level
    definition = statement(text, text)

    # When
    reading = read_tlp(obj(definition["id"]), defs(definition))

    # Then
    assert tlp_of_definition(definition) is level
    assert reading.level is level
    assert reading.unknown == []


def test_copyright_statement_has_no_tlp_effect() -> None:
    # Given a GREEN object that also carries a copyright statement
    copyright_ = statement("copyright", "Copyright 2026, Bank A. All rights reserved.")
    marked = obj(TLP2_IDS[Tlp.GREEN], copyright_["id"])

    # When
    reading = read_tlp(marked, defs(copyright_))

    # Then
    assert tlp_of_definition(copyright_) is None
    assert reading.level is Tlp.GREEN
    assert reading.unknown == []
    assert is_tlp_marking(copyright_["id"], defs(copyright_)) is False


def test_statement_without_colon_does_not_count() -> None:
    # Given a statement that mentions TLP but names no level in the `TLP:X` form
    definition = statement("mention", "See the TLP guidance of FIRST")

    # When / Then
    assert tlp_of_definition(definition) is None
    assert read_tlp(obj(definition["id"]), defs(definition)).level is Tlp.CLEAR


def test_statement_named_like_tlp_without_a_level_in_its_text_is_red() -> None:
    # Given a statement marking under an unknown id that claims TLP by its name only
    definition = statement("named-red", "For internal use of the recipient only", name="TLP:RED")

    # When
    reading = read_tlp(obj(TLP2_IDS[Tlp.GREEN], definition["id"]), defs(definition))

    # Then: it claims TLP under an unknown id, so it fails closed
    assert reading.level is Tlp.RED


def test_statement_tlp_white_counts_as_clear() -> None:
    # Given
    definition = statement("white", "TLP:WHITE")

    # When / Then
    assert tlp_of_definition(definition) is Tlp.CLEAR


# --- claims to be TLP, but the id is unknown: RED -------------------------------------------------------


def test_definition_type_tlp_with_unknown_id_is_red_and_reported() -> None:
    # Given a TLP 1.0 style definition that says GREEN under an id that is none of the known ones
    fake = {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": mid("fake-green"),
        "created": T0,
        "definition_type": "tlp",
        "name": "TLP:GREEN",
        "definition": {"tlp": "green"},
    }

    # When
    reading = read_tlp(obj(fake["id"]), defs(fake))

    # Then
    assert tlp_of_definition(fake) is Tlp.RED
    assert reading.level is Tlp.RED
    assert reading.unknown == [fake["id"]]


def test_tlp2_extension_with_unknown_id_is_red_and_reported() -> None:
    # Given a marking with the TLP 2.0 extension that says clear, under an unknown id
    fake = {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": mid("fake-clear"),
        "created": T0,
        "extensions": {TLP2_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": "clear"}},
    }

    # When
    reading = read_tlp(obj(fake["id"]), defs(fake))

    # Then
    assert reading.level is Tlp.RED
    assert reading.unknown == [fake["id"]]


def test_name_tlp_green_with_unknown_id_is_red() -> None:
    # Given a marking whose only TLP claim is its name
    fake = {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": mid("named-green"),
        "created": T0,
        "name": "TLP:GREEN",
        "extensions": {"extension-definition--0c4a5f1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b": {"extension_type": "x"}},
    }

    # When
    reading = read_tlp(obj(fake["id"]), defs(fake))

    # Then
    assert tlp_of_definition(fake) is Tlp.RED
    assert reading.level is Tlp.RED
    assert reading.unknown == [fake["id"]]


def test_reference_to_a_marking_not_in_the_bundle_is_red_and_reported() -> None:
    # Given a GREEN object that also refers to a marking nobody sent
    missing = mid("missing")
    marked = obj(TLP2_IDS[Tlp.GREEN], missing)

    # When
    reading = read_tlp(marked, {})

    # Then
    assert reading.level is Tlp.RED
    assert reading.unknown == [missing]
    assert is_tlp_marking(missing, {}) is True


def test_known_id_whose_definition_lies_is_read_by_its_id() -> None:
    # Given the TLP 2.0 GREEN id with a definition that claims RED, and the TLP 1.0 WHITE id that claims RED
    lying_green = {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": TLP2_IDS[Tlp.GREEN],
        "created": T0,
        "definition_type": "tlp",
        "name": "TLP:RED",
        "definition": {"tlp": "red"},
    }
    lying_white = {**lying_green, "id": TLP1_IDS[Tlp.CLEAR]}

    # When
    green = read_tlp(obj(TLP2_IDS[Tlp.GREEN]), defs(lying_green))
    white = read_tlp(obj(TLP1_IDS[Tlp.CLEAR]), defs(lying_white))

    # Then
    assert (green.level, green.unknown) == (Tlp.GREEN, [])
    assert (white.level, white.unknown) == (Tlp.CLEAR, [])
    assert tlp_of_definition(lying_green) is Tlp.GREEN


# --- granular markings, sender floor --------------------------------------------------------------------


def test_granular_marking_stricter_than_object_marking_wins() -> None:
    # Given a GREEN object whose description is marked RED
    marked = obj(
        TLP2_IDS[Tlp.GREEN],
        granular_markings=[{"marking_ref": TLP1_IDS[Tlp.RED], "selectors": ["description"]}],
    )

    # When
    reading = read_tlp(marked, {})

    # Then
    assert marking_refs(marked) == [TLP2_IDS[Tlp.GREEN], TLP1_IDS[Tlp.RED]]
    assert reading.level is Tlp.RED


def test_granular_marking_looser_than_object_marking_does_not_relax() -> None:
    # Given
    marked = obj(
        TLP2_IDS[Tlp.AMBER],
        granular_markings=[{"marking_ref": TLP2_IDS[Tlp.CLEAR], "selectors": ["name"]}],
    )

    # When / Then
    assert read_tlp(marked, {}).level is Tlp.AMBER


@pytest.mark.parametrize(
    ("marking", "floor", "expected"),
    [
        (Tlp.GREEN, Tlp.AMBER, Tlp.AMBER),
        (Tlp.RED, Tlp.GREEN, Tlp.RED),
        (Tlp.CLEAR, Tlp.CLEAR, Tlp.CLEAR),
        (None, Tlp.AMBER_STRICT, Tlp.AMBER_STRICT),
    ],
)
def test_sender_floor_is_the_least_strict_result(marking: Tlp | None, floor: Tlp, expected: Tlp) -> None:
    # Given
    marked = obj(TLP2_IDS[marking]) if marking is not None else obj()

    # When / Then
    assert read_tlp(marked, {}, floor=floor).level is expected


def test_no_marking_and_no_floor_is_clear() -> None:
    # Given / When / Then
    assert read_tlp(obj(), {}).level is Tlp.CLEAR


# --- custom fields and labels ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"x_tlp": "amber"}, Tlp.AMBER),
        ({"x_misp_tlp": "weird"}, Tlp.RED),
        ({"x_marking": "Shared as TLP:GREEN"}, Tlp.GREEN),
        ({"x_classification": ["green", "amber+strict"]}, Tlp.AMBER_STRICT),
        ({"x_tlp": True}, Tlp.RED),
        ({"x_tlp": ""}, Tlp.CLEAR),
        ({"x_opencti_score": 80}, Tlp.CLEAR),
        ({"labels": ["tlp:amber"]}, Tlp.AMBER),
        ({"labels": ["malicious-activity", "TLP:RED"]}, Tlp.RED),
        ({"labels": ["tlp-unknown"]}, Tlp.RED),
        ({"labels": ["phishing"]}, Tlp.CLEAR),
    ],
)
def test_custom_fields_and_labels_that_look_like_markings(extra: dict[str, Any], expected: Tlp) -> None:
    # Given an object without markings but with a custom property or label
    marked = obj(**extra)

    # When
    reading = read_tlp(marked, {})

    # Then
    assert reading.level is expected


def test_custom_field_never_loosens_a_marking() -> None:
    # Given
    marked = obj(TLP2_IDS[Tlp.AMBER], x_tlp="green", labels=["tlp:green"])

    # When / Then
    assert read_tlp(marked, {}).level is Tlp.AMBER


@pytest.mark.parametrize(
    "extra", [{"x_tlp": "clear"}, {"labels": ["tlp:clear"]}, {"x_marking": "Shared as TLP:CLEAR"}], ids=str
)
def test_custom_field_or_label_that_says_clear_is_clear(extra: dict[str, Any]) -> None:
    # Given a GREEN object whose custom field or label says CLEAR
    marked = obj(TLP2_IDS[Tlp.GREEN], **extra)

    # When / Then: it stays GREEN (a custom field only tightens, and CLEAR is not stricter)
    assert read_tlp(marked, {}).level is Tlp.GREEN


def test_custom_field_white_is_clear() -> None:
    # Given / When / Then
    assert read_tlp(obj(x_tlp="white", labels=["tlp:white"]), {}).level is Tlp.CLEAR


# --- TLP 1.0 has no AMBER+STRICT --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "legacy"),
    [
        (Tlp.CLEAR, Tlp.CLEAR),
        (Tlp.GREEN, Tlp.GREEN),
        (Tlp.AMBER, Tlp.AMBER),
        (Tlp.AMBER_STRICT, Tlp.RED),
        (Tlp.RED, Tlp.RED),
    ],
)
def test_tlp1_equivalent_is_never_weaker(level: Tlp, legacy: Tlp) -> None:
    # Given / When
    definition = tlp1_definition(level)

    # Then
    assert tlp1_equivalent(level) is legacy
    assert definition["id"] == TLP1_IDS[legacy]


def test_tlp1_definition_for_amber_strict_is_tlp_red() -> None:
    # Given / When
    definition = tlp1_definition(Tlp.AMBER_STRICT)

    # Then
    assert definition["id"] == "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"
    assert definition["name"] == "TLP:RED"
    assert definition["definition"] == {"tlp": "red"}


def test_tlp1_definition_for_clear_is_tlp_white() -> None:
    # Given / When
    definition = tlp1_definition(Tlp.CLEAR)

    # Then
    assert (definition["name"], definition["definition"]) == ("TLP:WHITE", {"tlp": "white"})


# --- Tlp.parse ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CLEAR", Tlp.CLEAR),
        ("clear", Tlp.CLEAR),
        ("GREEN", Tlp.GREEN),
        ("TLP: GREEN", Tlp.GREEN),
        ("TLP:AMBER", Tlp.AMBER),
        ("Amber", Tlp.AMBER),
        ("tlp:amber+strict", Tlp.AMBER_STRICT),
        ("AMBER + STRICT", Tlp.AMBER_STRICT),
        ("  TLP:AMBER+STRICT  ", Tlp.AMBER_STRICT),
        ("TLP：RED", Tlp.RED),
        ("tlp red", Tlp.RED),
    ],
)
def test_parse_reads_every_spelling(text: str, expected: Tlp) -> None:
    # Given / When / Then
    assert Tlp.parse(text) is expected
    assert Tlp.try_parse(text) is expected


@pytest.mark.parametrize("text", ["WHITE", "TLP:WHITE", "tlp: white"])
def test_parse_reads_tlp1_white_as_clear(text: str) -> None:
    # Given / When / Then
    assert Tlp.parse(text) is Tlp.CLEAR


@pytest.mark.parametrize("text", ["", "purple", "TLP-AMBER", "AMBER+", "TLP:AMBER STRICTLY", "RED!", "TLP:"])
def test_parse_refuses_what_is_not_a_level(text: str) -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match=r"^not a TLP level: "):
        Tlp.parse(text)
    assert Tlp.try_parse(text) is None


@pytest.mark.parametrize("value", [None, 2, Tlp.RED.value, ["RED"]])
def test_try_parse_of_a_non_string_is_none(value: object) -> None:
    # Given / When / Then
    assert Tlp.try_parse(value) is None


def test_order_and_labels() -> None:
    # Given / When / Then
    assert sorted(Tlp, reverse=True) == [Tlp.RED, Tlp.AMBER_STRICT, Tlp.AMBER, Tlp.GREEN, Tlp.CLEAR]
    assert [level.label for level in Tlp] == ["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"]
