"""Properties 2 and 3: what a delivered object is marked with, and that its definitions travel with it."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given

from tests.property.harness import CONNECTOR, Hub, content_of, objects_of
from tests.property.oracle import (
    KNOWN_MARKINGS,
    LEVELS,
    TLP1,
    TLP2,
    TLP2_EXTENSION,
    expect,
    is_tlp_ref,
    marking_refs,
    tlp1_level,
)
from tests.property.strategies import bundles, hub_configs, statement_definition


@given(config=hub_configs(), bundle=bundles())
def test_delivered_objects_carry_exactly_the_effective_tlp(config: dict[str, Any], bundle: dict[str, Any]) -> None:
    # Given a random hub and bundle
    hub = Hub(config)
    expected = expect(config, CONNECTOR, bundle)

    # When the hub ingests it
    result = hub.ingest(bundle)

    # Then each delivered object has one TLP 2.0 marking, the effective TLP, plus the TLP 1.0 one only for
    # communities that asked for it; no other TLP dialect, no unknown marking; statements travel along
    problems = []
    for dest in config["communities"]:
        legacy = "1.0" in dest.get("tlp_ids", ["2.0"])
        for obj in content_of(result.bundles.get(dest["id"], [])):
            if obj["id"] not in expected.objects:
                continue
            original = expected.objects[obj["id"]]
            level = expected.tlp[obj["id"]]
            refs = list(obj.get("object_marking_refs") or [])
            want_tlp = [TLP2[level]] + ([TLP1[tlp1_level(level)]] if legacy else [])
            got_tlp = [r for r in refs if r in KNOWN_MARKINGS or is_tlp_ref(r, expected.definitions)]
            statements = [
                r for r in original.get("object_marking_refs") or [] if not is_tlp_ref(r, expected.definitions)
            ]
            granular_tlp = [
                g.get("marking_ref")
                for g in obj.get("granular_markings") or []
                if is_tlp_ref(g.get("marking_ref"), expected.definitions)
            ]
            if sorted(got_tlp) != sorted(want_tlp) or granular_tlp or not set(statements) <= set(refs):
                problems.append(
                    f"{obj['id']} -> {dest['id']} (tlp_ids {dest.get('tlp_ids', ['2.0'])}): effective TLP {level}\n"
                    f"  TLP refs delivered {got_tlp}, wanted {want_tlp}; granular TLP refs {granular_tlp}\n"
                    f"  statements carried in {statements}, delivered refs {refs}\n"
                    f"  input markings: {marking_refs(original)}"
                )
    assert not problems, "\n\n".join(problems)


COPYRIGHT = "marking-definition--00000000-0000-4000-8000-000000000001"
GRANULAR_COPYRIGHT = {  # found by fuzzing: a statement marking kept as a granular marking, its definition not shipped
    "type": "bundle",
    "id": "bundle--00000000-0000-4000-8000-000000000000",
    "objects": [
        statement_definition(COPYRIGHT, "Copyright 2025 ACME Corp. All rights reserved."),
        {
            "type": "indicator",
            "spec_version": "2.1",
            "id": "indicator--00000000-0000-4000-8000-000000000002",
            "created": "2020-01-01T00:00:00.000Z",
            "modified": "2020-01-01T00:00:00.000Z",
            "name": "emotet C2",
            "pattern": "[ipv4-addr:value = '198.51.100.0']",
            "pattern_type": "stix",
            "valid_from": "2020-01-01T00:00:00.000Z",
            "granular_markings": [{"marking_ref": COPYRIGHT, "selectors": ["name"]}],
        },
    ],
}
ONE_ISAC = {
    "hub": {"id": "jp-hub"},
    "communities": [{"id": "finance-isac", "kind": "isac", "deliver": [{"pull": {}}]}],
    "connectors": [{"id": "drop-folder", "type": "stix", "sender": {"org": "Bank A"}}],
}


@given(config=hub_configs(), bundle=bundles())
@example(config=ONE_ISAC, bundle=GRANULAR_COPYRIGHT)
def test_every_definition_a_delivered_object_needs_is_in_its_bundle(
    config: dict[str, Any], bundle: dict[str, Any]
) -> None:
    # Given a random hub and bundle
    hub = Hub(config)

    # When the hub ingests it
    result = hub.ingest(bundle)

    # Then each bundle holds every marking- and extension-definition its objects refer to (rule 10),
    # and the TLP definitions it ships say the level their id stands for (never an input's lying copy)
    problems = []
    for dest_id, sent in result.bundles.items():
        for bundle_out in sent:
            objects = bundle_out["objects"]
            markings = {o["id"]: o for o in objects if o["type"] == "marking-definition"}
            extensions = {o["id"] for o in objects if o["type"] == "extension-definition"}
            for obj in objects:
                for ref in marking_refs(obj):
                    if ref not in markings:
                        problems.append(f"{dest_id}: {obj['id']} refers to marking {ref}, not in its bundle")
                for ext in obj.get("extensions") or {}:
                    if ext.startswith("extension-definition--") and ext not in extensions:
                        problems.append(f"{dest_id}: {obj['id']} uses extension {ext}, not in its bundle")
            for ref, definition in markings.items():
                says = _level_said(definition)
                if ref in KNOWN_MARKINGS and says is not None and says != KNOWN_MARKINGS[ref]:
                    problems.append(f"{dest_id}: definition of {ref} ({KNOWN_MARKINGS[ref]}) says {says}")
    assert not problems, "\n".join(problems)


@given(config=hub_configs(), bundle=bundles())
def test_delivered_bundles_hold_only_input_objects_and_what_they_need(
    config: dict[str, Any], bundle: dict[str, Any]
) -> None:
    # Given a random hub and bundle
    hub = Hub(config)
    input_ids = {o["id"] for o in bundle["objects"]}

    # When the hub ingests it
    result = hub.ingest(bundle)

    # Then a first delivery carries input objects and definitions, and at most the hub's own identity
    extra = [
        o
        for o in objects_of(b for sent in result.bundles.values() for b in sent)
        if o["id"] not in input_ids and o["type"] not in ("marking-definition", "extension-definition", "identity")
    ]
    assert not extra, extra


def _level_said(definition: dict[str, Any]) -> str | None:
    """The level a TLP 2.0 or 1.0 definition states in its body (None if it states none)."""
    ext = (definition.get("extensions") or {}).get(TLP2_EXTENSION) or {}
    word = ext.get("tlp_2_0") or (definition.get("definition") or {}).get("tlp")
    if not isinstance(word, str):
        return None
    word = {"white": "clear", "amber+strict": "amber+strict"}.get(word.lower(), word.lower())
    return next((lvl for lvl in LEVELS if lvl.lower() == word), None)
