"""Reading STIX safely: I-JSON only, caps on size, depth and count, and a machine-readable reason for each refusal."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.stixjson import (
    MAX_INPUT_BYTES,
    MAX_OBJECTS,
    MAX_SAFE_INT,
    InputRefused,
    ObjectInvalid,
    check_object,
    definitions_of,
    load_bundle,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
T0 = "2026-11-01T00:00:00.000Z"
T1 = "2026-11-02T00:00:00Z"
UUID = "3f1c4a8e-0b2d-4c6e-8f9a-1b2c3d4e5f60"
IND = f"indicator--{UUID}"
MAL = "malware--3f1c4a8e-0b2d-4c6e-8f9a-1b2c3d4e5f61"
IDY = "identity--3f1c4a8e-0b2d-4c6e-8f9a-1b2c3d4e5f62"
MARK = "marking-definition--3f1c4a8e-0b2d-4c6e-8f9a-1b2c3d4e5f63"


def indicator(**extra: Any) -> dict[str, Any]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": IND,
        "created": T0,
        "modified": T0,
        "pattern": "[domain-name:value = 'evil.example']",
        "pattern_type": "stix",
        "valid_from": T0,
        **extra,
    }


def raw_bundle(objects_json: str = "[]", extra: str = "") -> bytes:
    return f'{{"type": "bundle", "id": "bundle--{UUID}", "objects": {objects_json}{extra}}}'.encode()


def refused(raw: bytes) -> str:
    with pytest.raises(InputRefused) as exc:
        load_bundle(raw)
    return exc.value.reason


def invalid(obj: Any, now: datetime = NOW) -> str:
    with pytest.raises(ObjectInvalid) as exc:
        check_object(obj, now)
    return exc.value.reason


def nested(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


# --- load_bundle --------------------------------------------------------------------------------------------


def test_load_bundle_returns_the_objects() -> None:
    # Given
    raw = raw_bundle(json.dumps([indicator()]))

    # When
    objects = load_bundle(raw)

    # Then
    assert objects == [indicator()]


def test_bundle_without_objects_is_empty() -> None:
    # Given / When / Then
    assert load_bundle(b'{"type": "bundle", "id": "bundle--' + UUID.encode() + b'"}') == []


def test_too_large_is_refused_before_parsing() -> None:
    # Given one byte over the cap (not even JSON)
    raw = b" " * (MAX_INPUT_BYTES + 1)

    # When / Then
    assert refused(raw) == "input:too-large"


def test_not_utf8_is_refused() -> None:
    # Given a Shift_JIS description
    raw = raw_bundle().replace(b"[]", b'[{"x_note": "' + "\u4e0d\u5be9".encode("shift_jis") + b'"}]')

    # When / Then
    assert refused(raw) == "json:not-utf8"


def test_utf8_bom_is_accepted() -> None:
    # Given
    raw = b"\xef\xbb\xbf" + raw_bundle(json.dumps([indicator(name="\u4e0d\u5be9\u306a\u30e1\u30fc\u30eb")]))

    # When
    objects = load_bundle(raw)

    # Then
    assert objects[0]["name"] == "\u4e0d\u5be9\u306a\u30e1\u30fc\u30eb"


@pytest.mark.parametrize(
    "raw",
    [
        raw_bundle('[{"type": "indicator", "object_marking_refs": [], "object_marking_refs": []}]'),
        raw_bundle("[]", ', "objects": []'),
        raw_bundle('[{"a": {"b": {"c": 1, "c": 2}}}]'),
    ],
    ids=["object-level", "bundle-level", "nested"],
)
def test_duplicate_keys_are_refused(raw: bytes) -> None:
    # Given / When / Then
    assert refused(raw) == "json:duplicate-key"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(literal: str) -> None:
    # Given
    raw = raw_bundle(f'[{{"confidence": {literal}}}]')

    # When / Then
    assert refused(raw) == "json:non-finite-number"


@pytest.mark.parametrize("literal", ["1e400", "-1e400"])
def test_overflowing_float_is_refused(literal: str) -> None:
    # Given
    raw = raw_bundle(f'[{{"x_score": {literal}}}]')

    # When / Then
    assert refused(raw) == "json:non-finite-number"


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b'{"type": "bundle",}', b"\x00"], ids=repr)
def test_not_json_is_refused(raw: bytes) -> None:
    # Given / When / Then
    assert refused(raw) == "json:invalid"


@pytest.mark.parametrize(
    "raw",
    [
        b"[]",
        b'[{"type": "bundle"}]',
        b'{"type": "indicator", "objects": []}',
        b'{"objects": []}',
        b'"bundle"',
        raw_bundle('{"a": 1}'),
        raw_bundle("null"),
    ],
    ids=["array", "array-of-bundle", "other-type", "no-type", "string", "objects-dict", "objects-null"],
)
def test_not_a_bundle_is_refused(raw: bytes) -> None:
    # Given / When / Then
    assert refused(raw) == "stix:not-a-bundle"


def test_too_many_objects_is_refused_and_the_cap_is_inclusive() -> None:
    # Given
    at_cap = raw_bundle("[" + ",".join(["{}"] * MAX_OBJECTS) + "]")
    over_cap = raw_bundle("[" + ",".join(["{}"] * (MAX_OBJECTS + 1)) + "]")

    # When / Then
    assert len(load_bundle(at_cap)) == MAX_OBJECTS
    assert refused(over_cap) == "input:too-many-objects"


def test_deep_nesting_beyond_the_parser_is_refused() -> None:
    # Given nesting deep enough to exhaust the parser's recursion
    raw = raw_bundle("[" * 100_000 + "]" * 100_000)

    # When / Then
    assert refused(raw) == "json:too-deep"


def test_huge_integer_is_refused() -> None:
    # Given an integer with more digits than Python will convert
    raw = raw_bundle('[{"x_n": ' + "9" * 5000 + "}]")

    # When / Then
    assert refused(raw) == "json:invalid"


# --- check_object ------------------------------------------------------------------------------------------


def test_valid_object_passes() -> None:
    # Given / When
    checked = check_object(indicator(), NOW)

    # Then
    assert checked.obj == indicator()
    assert checked.content_refs == []


@pytest.mark.parametrize("obj", [[], "indicator", 1, None])
def test_not_an_object(obj: Any) -> None:
    # Given / When / Then
    assert invalid(obj) == "stix:not-an-object"


@pytest.mark.parametrize(
    "obj",
    [{"id": IND}, {"type": "indicator"}, {"type": 1, "id": IND}, {"type": "indicator", "id": ["x"]}],
    ids=["no-type", "no-id", "type-not-str", "id-not-str"],
)
def test_missing_type_or_id(obj: dict[str, Any]) -> None:
    # Given / When / Then
    assert invalid(obj) == "stix:missing-type-or-id"


@pytest.mark.parametrize(
    "obj_id",
    [
        "indicator--not-a-uuid",
        "indicator--3F1C4A8E-0B2D-4C6E-8F9A-1B2C3D4E5F60",
        "indicator-3f1c4a8e-0b2d-4c6e-8f9a-1b2c3d4e5f60",
        f"Indicator--{UUID}",
        f"indicator--{UUID}x",
        f"--{UUID}",
        "indicator--../../etc/passwd",
    ],
    ids=["not-uuid", "uppercase", "single-dash", "uppercase-type", "trailing", "no-type", "path"],
)
def test_invalid_id(obj_id: str) -> None:
    # Given / When / Then
    assert invalid(indicator(id=obj_id)) == "stix:invalid-id"


def test_type_that_does_not_match_the_id_prefix() -> None:
    # Given / When / Then
    assert invalid(indicator(id=MAL)) == "stix:id-type-mismatch"


@pytest.mark.parametrize("version", ["2.0", None, 2.1, ""])
def test_sdo_spec_version_must_be_2_1(version: Any) -> None:
    # Given
    obj = indicator(spec_version=version)

    # When / Then
    assert invalid(obj) == "stix:not-2.1"


def test_sdo_without_spec_version_is_refused() -> None:
    # Given
    obj = indicator()
    del obj["spec_version"]

    # When / Then
    assert invalid(obj) == "stix:not-2.1"


def test_sco_without_spec_version_or_timestamps_is_fine() -> None:
    # Given
    ip = {"type": "ipv4-addr", "id": "ipv4-addr--3f1c4a8e-0b2d-4c6e-8f9a-1b2c3d4e5f64", "value": "198.51.100.7"}

    # When
    checked = check_object(ip, NOW)

    # Then
    assert checked.obj is ip


def test_sco_with_spec_version_2_0_is_refused() -> None:
    # Given
    ip = {"type": "ipv4-addr", "spec_version": "2.0", "id": "ipv4-addr--3f1c4a8e-0b2d-4c6e-8f9a-1b2c3d4e5f64"}

    # When / Then
    assert invalid(ip) == "stix:not-2.1"


@pytest.mark.parametrize(
    "changes",
    [
        {"created": "2026-11-01 00:00:00Z"},
        {"created": "2026-11-01T00:00:00+09:00"},
        {"created": "2026-02-30T00:00:00Z"},
        {"created": None},
        {"modified": "yesterday"},
        {"modified": "2026-11-01T25:00:00Z"},
        {"modified": 1_700_000_000},
    ],
    ids=["space", "offset", "no-such-day", "null", "word", "hour-25", "epoch"],
)
def test_invalid_timestamps(changes: dict[str, Any]) -> None:
    # Given / When / Then
    assert invalid(indicator(**changes)) == "stix:invalid-timestamp"


def test_missing_modified_on_an_sdo_is_refused() -> None:
    # Given
    obj = indicator()
    del obj["modified"]

    # When / Then
    assert invalid(obj) == "stix:invalid-timestamp"


def test_marking_definition_needs_no_modified() -> None:
    # Given
    marking = {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": MARK,
        "created": T0,
        "definition_type": "statement",
        "definition": {"statement": "Copyright 2026 ACME"},
    }

    # When / Then
    assert check_object(marking, NOW).content_refs == []


def test_modified_before_created_is_refused() -> None:
    # Given
    obj = indicator(created=T1, modified=T0)

    # When / Then
    assert invalid(obj) == "stix:modified-before-created"


def test_same_instant_in_two_spellings_is_not_before() -> None:
    # Given
    obj = indicator(created="2026-11-01T00:00:00.000Z", modified="2026-11-01T00:00:00Z")

    # When / Then
    assert check_object(obj, NOW).obj is obj


def test_modified_in_the_future_beyond_a_day_is_refused() -> None:
    # Given the clock at NOW; one day of skew is tolerated
    just_in = indicator(modified="2026-11-24T12:00:00Z")
    too_far = indicator(modified="2026-11-24T12:00:01Z")

    # When / Then
    assert check_object(just_in, NOW).obj is just_in
    assert invalid(too_far) == "stix:modified-in-future"


def test_fractional_seconds_of_any_precision_are_valid() -> None:
    # Given
    obj = indicator(created="2026-11-01T00:00:00.1Z", modified="2026-11-01T00:00:00.123456789Z")

    # When / Then
    assert check_object(obj, NOW).obj is obj


def test_lone_surrogate_in_a_value_is_refused() -> None:
    # Given a lone surrogate, as json.loads produces it from "\ud800"
    obj = load_bundle(raw_bundle(json.dumps([indicator(name="x\ud800y")])))[0]

    # When / Then
    assert invalid(obj) == "json:lone-surrogate"


def test_lone_surrogate_nested_in_a_list_is_refused() -> None:
    # Given / When / Then
    assert invalid(indicator(labels=["ok", "\udfff"])) == "json:lone-surrogate"


def test_lone_surrogate_in_a_key_is_refused() -> None:
    # Given
    obj = indicator(**{"x_\ud800": 1})

    # When / Then
    assert invalid(obj) == "json:lone-surrogate"


def test_non_ascii_text_is_fine() -> None:
    # Given
    obj = indicator(description="\u4e0d\u5be9\u306a\u30e1\u30fc\u30eb \U0001f41f")

    # When / Then
    assert check_object(obj, NOW).obj is obj


@pytest.mark.parametrize("value", [MAX_SAFE_INT + 1, -(MAX_SAFE_INT + 1), 10**30])
def test_integer_out_of_range_is_refused(value: int) -> None:
    # Given / When / Then
    assert invalid(indicator(x_n=value)) == "json:integer-out-of-range"


def test_integer_out_of_range_nested_is_refused() -> None:
    # Given / When / Then
    assert invalid(indicator(x_data={"a": [1, {"b": 2**60}]})) == "json:integer-out-of-range"


@pytest.mark.parametrize("value", [MAX_SAFE_INT, -MAX_SAFE_INT, 0, 1.5e300, True])
def test_numbers_in_range_are_fine(value: Any) -> None:
    # Given / When / Then
    assert check_object(indicator(x_n=value), NOW).obj["x_n"] == value


def test_depth_cap_is_64() -> None:
    # Given the bundle and its objects list as the first two levels: a list at depth 64 is fine, at 65 is not
    at_cap = indicator(x_deep=nested(62))
    over_cap = indicator(x_deep=nested(63))

    # When / Then
    assert check_object(at_cap, NOW).obj is at_cap
    assert invalid(over_cap) == "json:too-deep"


def test_depth_cap_counts_dicts_too() -> None:
    # Given
    value: Any = 1
    for _ in range(80):
        value = {"x": value}

    # When / Then
    assert invalid(indicator(x_deep=value)) == "json:too-deep"


def test_content_refs_exclude_author_and_markings() -> None:
    # Given a relationship with an author, markings and a granular marking
    rel = {
        "type": "relationship",
        "spec_version": "2.1",
        "id": "relationship--3f1c4a8e-0b2d-4c6e-8f9a-1b2c3d4e5f65",
        "created": T0,
        "modified": T0,
        "relationship_type": "indicates",
        "source_ref": IND,
        "target_ref": MAL,
        "created_by_ref": IDY,
        "object_marking_refs": [MARK],
        "granular_markings": [{"marking_ref": MARK, "selectors": ["description"]}],
    }

    # When
    checked = check_object(rel, NOW)

    # Then
    assert checked.content_refs == [IND, MAL]


def test_content_refs_of_a_report_and_nested_refs() -> None:
    # Given a report, and a sighting whose refs sit in lists
    report = {
        "type": "report",
        "spec_version": "2.1",
        "id": "report--3f1c4a8e-0b2d-4c6e-8f9a-1b2c3d4e5f66",
        "created": T0,
        "modified": T0,
        "name": "r",
        "published": T0,
        "object_refs": [IND, MAL],
        "created_by_ref": IDY,
        "x_extra": {"sample_ref": "file--3f1c4a8e-0b2d-4c6e-8f9a-1b2c3d4e5f67"},
    }

    # When
    checked = check_object(report, NOW)

    # Then
    assert checked.content_refs == [IND, MAL, "file--3f1c4a8e-0b2d-4c6e-8f9a-1b2c3d4e5f67"]


def test_definitions_of_picks_marking_and_extension_definitions() -> None:
    # Given
    marking = {"type": "marking-definition", "id": MARK}
    extension = {"type": "extension-definition", "id": "extension-definition--3f1c4a8e-0b2d-4c6e-8f9a-1b2c3d4e5f68"}

    # When
    found = list(definitions_of([indicator(), marking, "junk", extension, {"type": "identity", "id": IDY}]))

    # Then
    assert found == [marking, extension]
