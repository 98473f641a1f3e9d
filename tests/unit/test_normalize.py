"""Normalise: one TLP 2.0 marking, the Renkei extension (TLP, scope, hops), carried values only narrow."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from stix2validator import ValidationOptions, validate_instance

from gateway.model import SenderPolicy
from gateway.normalize import (
    RENKEI_EXTENSION_DEFINITION,
    RENKEI_EXTENSION_ID,
    RENKEI_IDENTITY,
    Carried,
    CarriedInvalid,
    carried,
    content_hash,
    normalize,
    version_of,
    with_tlp1,
)
from gateway.scope import to_json
from gateway.tlp import TLP1_IDS, TLP2_EXTENSION_DEFINITION, TLP2_IDS, tlp1_definition, tlp2_definition
from schemas.config import Scope
from schemas.tlp import Tlp

T0 = "2026-11-01T00:00:00.000Z"
T1 = "2026-11-02T00:00:00.000Z"
OBJ_ID = "indicator--3f1c4a8e-0b2d-4c6e-8f9a-1b2c3d4e5f60"
COPYRIGHT = "marking-definition--3f1c4a8e-0b2d-4c6e-8f9a-1b2c3d4e5f63"
MISSING = "marking-definition--3f1c4a8e-0b2d-4c6e-8f9a-1b2c3d4e5f64"
OTHER_EXT = "extension-definition--3f1c4a8e-0b2d-4c6e-8f9a-1b2c3d4e5f65"
COPYRIGHT_DEF = {
    "type": "marking-definition",
    "spec_version": "2.1",
    "id": COPYRIGHT,
    "created": T0,
    "definition_type": "statement",
    "definition": {"statement": "Copyright 2026 ACME CERT"},
}
DEFS = {COPYRIGHT: COPYRIGHT_DEF}


def scope(share_with: str | list[str] = "all", *exclude: Any) -> Scope:
    return Scope.model_validate({"share_with": share_with, "exclude": list(exclude)})


def sender(tlp: Tlp = Tlp.CLEAR, s: Scope | None = None) -> SenderPolicy:
    return SenderPolicy(connector_id="drop", connector_type="stix", org="Bank A", tlp=tlp, scope=s or Scope())


def indicator(*markings: str, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": OBJ_ID,
        "created": T0,
        "modified": T1,
        "name": "Phishing domain",
        "description": "Credential phishing",
        "pattern": "[domain-name:value = 'evil.example']",
        "pattern_type": "stix",
        "valid_from": T0,
    }
    if markings:
        obj["object_marking_refs"] = list(markings)
    obj.update(extra)
    return obj


def renkei(**ext: Any) -> dict[str, Any]:
    return {"extensions": {RENKEI_EXTENSION_ID: {"extension_type": "property-extension", **ext}}}


# --- markings --------------------------------------------------------------------------------------------


def test_exactly_one_tlp2_marking_at_the_strictest_level() -> None:
    # Given an object with a TLP 1.0 AMBER and a TLP 2.0 GREEN marking
    obj = indicator(TLP1_IDS[Tlp.AMBER], TLP2_IDS[Tlp.GREEN])

    # When
    n = normalize(obj, {}, sender(), "hub-a")

    # Then
    assert n.obj["object_marking_refs"] == [TLP2_IDS[Tlp.AMBER]]
    assert n.routable.tlp is Tlp.AMBER


def test_unmarked_object_gets_the_sender_tlp() -> None:
    # Given / When
    n = normalize(indicator(), {}, sender(Tlp.GREEN), "hub-a")

    # Then
    assert n.obj["object_marking_refs"] == [TLP2_IDS[Tlp.GREEN]]


def test_statement_markings_are_kept_after_the_tlp() -> None:
    # Given
    obj = indicator(COPYRIGHT, TLP1_IDS[Tlp.CLEAR], COPYRIGHT)

    # When
    n = normalize(obj, DEFS, sender(Tlp.GREEN), "hub-a")

    # Then
    assert n.obj["object_marking_refs"] == [TLP2_IDS[Tlp.GREEN], COPYRIGHT]
    assert n.statement_markings == [COPYRIGHT]


def test_unknown_marking_is_red_reported_and_dropped() -> None:
    # Given a reference to a marking nobody sent
    obj = indicator(TLP2_IDS[Tlp.GREEN], MISSING)

    # When
    n = normalize(obj, {}, sender(), "hub-a")

    # Then
    assert n.obj["object_marking_refs"] == [TLP2_IDS[Tlp.RED]]
    assert n.unknown_markings == [MISSING]
    assert n.routable.tlp is Tlp.RED


def test_tlp_granular_markings_are_removed_and_others_kept() -> None:
    # Given a GREEN object whose description is AMBER and whose name is under copyright
    obj = indicator(
        TLP2_IDS[Tlp.GREEN],
        granular_markings=[
            {"marking_ref": TLP2_IDS[Tlp.AMBER], "selectors": ["description"]},
            {"marking_ref": COPYRIGHT, "selectors": ["name"]},
        ],
    )

    # When
    n = normalize(obj, DEFS, sender(), "hub-a")

    # Then: the whole object is AMBER, and only the copyright stays granular
    assert n.obj["object_marking_refs"] == [TLP2_IDS[Tlp.AMBER]]
    assert n.obj["granular_markings"] == [{"marking_ref": COPYRIGHT, "selectors": ["name"]}]


def test_only_tlp_granular_markings_leave_no_granular_property() -> None:
    # Given
    obj = indicator(granular_markings=[{"marking_ref": TLP1_IDS[Tlp.RED], "selectors": ["description"]}])

    # When
    n = normalize(obj, {}, sender(), "hub-a")

    # Then
    assert "granular_markings" not in n.obj
    assert n.obj["object_marking_refs"] == [TLP2_IDS[Tlp.RED]]


def test_input_is_not_mutated() -> None:
    # Given
    obj = indicator(TLP1_IDS[Tlp.GREEN], extensions={OTHER_EXT: {"extension_type": "property-extension", "a": 1}})
    before = copy.deepcopy(obj)

    # When
    n = normalize(obj, {}, sender(), "hub-a")

    # Then
    assert obj == before
    assert n.original is obj


# --- the Renkei extension ----------------------------------------------------------------------------------


def test_renkei_extension_carries_tlp_scope_and_hops_with_this_hub() -> None:
    # Given an AMBER+STRICT sender sharing with bank-b, an object that came through hub-x
    s = scope(["bank-b"], "fsa", {"kind": "regulator"})

    # When
    n = normalize(indicator(), {}, sender(Tlp.AMBER_STRICT, s), "hub-a", envelope_hops=("hub-x",))

    # Then
    assert n.obj["extensions"] == {
        RENKEI_EXTENSION_ID: {
            "extension_type": "property-extension",
            "tlp": "AMBER+STRICT",
            "scope": {"share_with": ["bank-b"], "exclude": ["fsa", {"kind": "regulator"}]},
            "hops": ["hub-x", "hub-a"],
        }
    }
    assert n.routable.hops == ("hub-x",)
    assert n.routable.scope == s


def test_other_extensions_are_kept() -> None:
    # Given
    other = {OTHER_EXT: {"extension_type": "property-extension", "x_score": 80}}

    # When
    n = normalize(indicator(extensions=other), {}, sender(), "hub-a")

    # Then
    assert n.obj["extensions"][OTHER_EXT] == other[OTHER_EXT]
    assert sorted(n.obj["extensions"]) == sorted([OTHER_EXT, RENKEI_EXTENSION_ID])


def test_carried_hops_come_first_without_repeats() -> None:
    # Given an object that lists hub-x and came in an envelope through hub-x and hub-y
    obj = indicator(**renkei(hops=["hub-x"]))

    # When
    n = normalize(obj, {}, sender(), "hub-a", envelope_hops=("hub-x", "hub-y"))

    # Then
    assert n.routable.hops == ("hub-x", "hub-y")
    assert n.obj["extensions"][RENKEI_EXTENSION_ID]["hops"] == ["hub-x", "hub-y", "hub-a"]


@pytest.mark.parametrize(
    ("sender_scope", "carried_scope", "expected"),
    [
        (scope("all"), {"share_with": ["finance-isac"], "exclude": [{"kind": "regulator"}]},
         {"share_with": ["finance-isac"], "exclude": [{"kind": "regulator"}]}),
        (scope(["a", "b"]), {"share_with": "all", "exclude": []}, {"share_with": ["a", "b"], "exclude": []}),
        (scope(["a", "b"], "x"), {"share_with": ["b", "c"], "exclude": ["y"]},
         {"share_with": ["b"], "exclude": ["x", "y"]}),
    ],
    ids=["relay-cannot-widen", "carried-all", "both-named"],
)  # fmt: skip
def test_carried_scope_is_intersected(sender_scope: Scope, carried_scope: Any, expected: Any) -> None:
    # Given an object relayed with a scope from its original sender
    obj = indicator(**renkei(scope=carried_scope))

    # When
    n = normalize(obj, {}, sender(s=sender_scope), "hub-a")

    # Then
    assert n.obj["extensions"][RENKEI_EXTENSION_ID]["scope"] == expected
    assert to_json(n.routable.scope) == expected


@pytest.mark.parametrize(
    ("carried_tlp", "marking", "expected"),
    [("AMBER", Tlp.GREEN, Tlp.AMBER), ("CLEAR", Tlp.AMBER, Tlp.AMBER), ("AMBER+STRICT", Tlp.RED, Tlp.RED)],
    ids=["carried-tighter", "carried-looser", "marking-tighter"],
)
def test_carried_tlp_only_tightens(carried_tlp: str, marking: Tlp, expected: Tlp) -> None:
    # Given
    obj = indicator(TLP2_IDS[marking], **renkei(tlp=carried_tlp))

    # When
    n = normalize(obj, {}, sender(), "hub-a")

    # Then
    assert n.routable.tlp is expected
    assert n.obj["object_marking_refs"] == [TLP2_IDS[expected]]
    assert n.obj["extensions"][RENKEI_EXTENSION_ID]["tlp"] == expected.label


def test_carried_reads_the_extension() -> None:
    # Given
    obj = indicator(**renkei(tlp="GREEN", scope={"share_with": ["a"], "exclude": []}, hops=["hub-x", "hub-y"]))

    # When
    c = carried(obj)

    # Then
    assert c == Carried(Tlp.GREEN, scope(["a"]), ("hub-x", "hub-y"))


def test_carried_of_an_object_without_extension_is_empty() -> None:
    # Given / When / Then
    assert carried(indicator()) == Carried(None, None, ())


@pytest.mark.parametrize(
    "ext",
    [
        "AMBER",
        ["AMBER"],
        {"tlp": "PURPLE"},
        {"scope": {"share_with": "some"}},
        {"scope": {"share_with": "all", "widen": True}},
        {"scope": "all"},
        {"hops": "hub-x"},
        {"hops": ["hub-x", 3]},
    ],
    ids=["string", "list", "bad-tlp", "bad-share-with", "extra-key", "scope-string", "hops-string", "hops-int"],
)
def test_malformed_carried_extension_raises(ext: Any) -> None:
    # Given
    obj = indicator(extensions={RENKEI_EXTENSION_ID: ext})

    # When / Then
    with pytest.raises(CarriedInvalid):
        normalize(obj, {}, sender(), "hub-a")


@pytest.mark.parametrize("value", [3, None, ["AMBER"]])
def test_non_string_carried_tlp_raises_carried_invalid(value: Any) -> None:
    # Given
    obj = indicator(**renkei(tlp=value))

    # When / Then
    with pytest.raises(CarriedInvalid):
        carried(obj)


def test_carried_tlp_white_is_clear() -> None:
    # Given / When / Then
    assert carried(indicator(**renkei(tlp="WHITE"))).tlp is Tlp.CLEAR


# --- content hash and version ---------------------------------------------------------------------------


def test_content_hash_ignores_markings_and_the_renkei_extension() -> None:
    # Given the same content under other markings and another hop list
    other = {OTHER_EXT: {"extension_type": "property-extension", "a": 1}}
    a = indicator(TLP2_IDS[Tlp.GREEN], extensions={**other, **renkei(hops=["hub-x"])["extensions"]})
    b = indicator(
        TLP1_IDS[Tlp.RED],
        COPYRIGHT,
        granular_markings=[{"marking_ref": COPYRIGHT, "selectors": ["name"]}],
        extensions={**other, **renkei(tlp="RED", hops=["hub-y", "hub-z"])["extensions"]},
    )

    # When / Then
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) == content_hash(indicator(extensions=other))


def test_content_hash_of_a_relayed_object_equals_the_original() -> None:
    # Given the original (no extensions) and the same object as relayed by a hub
    original = indicator(TLP2_IDS[Tlp.GREEN])
    relayed = normalize(original, {}, sender(), "hub-x").obj

    # When / Then
    assert content_hash(relayed) == content_hash(original)


def test_content_hash_sees_content_and_other_extensions() -> None:
    # Given
    base = indicator()

    # When / Then
    assert content_hash(base) != content_hash(indicator(description="Credential phishing, v2"))
    assert content_hash(base) != content_hash(indicator(extensions={OTHER_EXT: {"extension_type": "x"}}))
    assert content_hash(indicator(a=1, b=2)) == content_hash({**indicator(b=2), "a": 1})
    assert len(content_hash(base)) == 64


def test_normalized_carries_the_hash_of_the_input() -> None:
    # Given
    obj = indicator(TLP2_IDS[Tlp.GREEN])

    # When
    n = normalize(obj, {}, sender(), "hub-a")

    # Then
    assert n.content_hash == content_hash(obj)
    assert n.version == T1


def test_version_of() -> None:
    # Given
    digest = "0123456789abcdef" * 4
    no_modified = indicator()
    del no_modified["modified"]

    # When / Then
    assert version_of(indicator(), digest) == T1
    assert version_of(no_modified, digest) == T0
    assert version_of({"type": "ipv4-addr", "value": "198.51.100.7"}, digest) == "sha256:" + digest[:32]


# --- TLP 1.0 for legacy tools ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "legacy"),
    [(Tlp.CLEAR, Tlp.CLEAR), (Tlp.AMBER, Tlp.AMBER), (Tlp.AMBER_STRICT, Tlp.RED)],
)
def test_with_tlp1_adds_the_legacy_marking_never_weaker(level: Tlp, legacy: Tlp) -> None:
    # Given
    n = normalize(indicator(TLP2_IDS[level]), {}, sender(), "hub-a")

    # When
    out = with_tlp1(n.obj, level)

    # Then
    assert out["object_marking_refs"] == [TLP2_IDS[level], TLP1_IDS[legacy]]
    assert n.obj["object_marking_refs"] == [TLP2_IDS[level]]


# --- stix2-validator: what leaves the hub is valid STIX 2.1 -----------------------------------------------

OPTIONS = ValidationOptions(version="2.1")


def errors_of(obj: dict[str, Any]) -> list[str]:
    result = validate_instance(obj, OPTIONS)
    return [str(e) for e in result.errors] if not result.is_valid else []


def test_normalized_object_is_valid_stix() -> None:
    # Given an AMBER object with a copyright, a granular marking and another extension, relayed once
    obj = indicator(
        TLP1_IDS[Tlp.GREEN],
        COPYRIGHT,
        granular_markings=[
            {"marking_ref": COPYRIGHT, "selectors": ["name"]},
            {"marking_ref": TLP2_IDS[Tlp.AMBER], "selectors": ["description"]},
        ],
        extensions={OTHER_EXT: {"extension_type": "property-extension", "x_score": 80}},
    )

    # When
    n = normalize(obj, DEFS, sender(s=scope(["bank-b"], {"kind": "regulator"})), "hub-a", envelope_hops=("hub-x",))
    with_legacy = with_tlp1(n.obj, n.routable.tlp)

    # Then
    assert errors_of(n.obj) == []
    assert errors_of(with_legacy) == []


def test_normalized_sco_is_valid_stix() -> None:
    # Given
    ip = {
        "type": "ipv4-addr",
        "spec_version": "2.1",
        "id": "ipv4-addr--5c2d0b5a-3f0e-5b7e-9a55-1f3c4d5e6f70",
        "value": "198.51.100.7",
    }

    # When
    n = normalize(ip, {}, sender(Tlp.GREEN), "hub-a")

    # Then
    assert errors_of(n.obj) == []


@pytest.mark.parametrize(
    "definition",
    [
        RENKEI_EXTENSION_DEFINITION,
        RENKEI_IDENTITY,
        TLP2_EXTENSION_DEFINITION,
        *(tlp2_definition(level) for level in Tlp),
        *(tlp1_definition(level) for level in Tlp),
    ],
    ids=lambda d: f"{d['type']}:{d.get('name', d['id'])}",
)
def test_definitions_shipped_with_deliveries_are_valid_stix(definition: dict[str, Any]) -> None:
    # Given / When / Then
    assert errors_of(definition) == []
