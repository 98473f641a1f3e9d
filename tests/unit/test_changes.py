"""Follow-ups: what changed between two versions, and the STIX note that tells a recipient."""

from __future__ import annotations

import re
from typing import Any

from stix2validator import ValidationOptions, validate_instance

from gateway.changes import Changes, change_note, describe, diff
from gateway.normalize import RENKEI_EXTENSION_ID
from gateway.tlp import TLP2_IDS
from schemas.tlp import Tlp

OBJ_ID = "indicator--3f1c4a8e-0b2d-4c6e-8f9a-1b2c3d4e5f60"
HUB_ID = "identity--0f0e0d0c-0b0a-4908-8706-050403020100"
STATEMENT = "marking-definition--3f1c4a8e-0b2d-4c6e-8f9a-1b2c3d4e5f63"
T0 = "2026-11-01T00:00:00.000Z"
T1 = "2026-11-02T00:00:00.000Z"
T2 = "2026-11-03T00:00:00.000Z"
RENKEI = {"extension_type": "property-extension", "tlp": "AMBER", "scope": {"share_with": ["bank-b"], "exclude": []}}


def indicator(modified: str = T0, **extra: Any) -> dict[str, Any]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": OBJ_ID,
        "created": T0,
        "modified": modified,
        "name": "Phishing domain",
        "pattern": "[domain-name:value = 'evil.example']",
        "pattern_type": "stix",
        "valid_from": T0,
        "object_marking_refs": [TLP2_IDS[Tlp.AMBER], STATEMENT],
        "extensions": {RENKEI_EXTENSION_ID: {**RENKEI, "hops": ["hub-a"]}},
        **extra,
    }


def versions() -> tuple[dict[str, Any], dict[str, Any]]:
    old = indicator(T0, confidence=50, labels=["phishing"])
    new = indicator(T1, confidence=80, description="Now also hosts a credential form.")
    return old, new


# --- diff ---------------------------------------------------------------------------------------------------


def test_diff_added_removed_changed() -> None:
    # Given
    old, new = versions()

    # When
    changes = diff(old, new)

    # Then
    assert changes.added == {"description": "Now also hosts a credential form."}
    assert changes.removed == {"labels": ["phishing"]}
    assert changes.changed == {"confidence": (50, 80)}
    assert changes.headline() == "1 changed, 1 added, 1 removed"


def test_diff_ignores_modified_and_renkeis_own_extension() -> None:
    # Given two versions that differ only in modified and in the hub's own bookkeeping
    old = indicator(T0)
    new = indicator(T1, extensions={RENKEI_EXTENSION_ID: {**RENKEI, "hops": ["hub-a", "hub-b"]}})

    # When
    changes = diff(old, new)

    # Then
    assert (changes.added, changes.removed, changes.changed) == ({}, {}, {})
    assert bool(changes) is False
    assert changes.headline() == "no visible change"


def test_diff_reports_a_change_in_another_extension() -> None:
    # Given a version whose third-party extension (say, a score) changed
    old = indicator(T0, extensions={"extension-definition--00000000-0000-4000-8000-000000000001": {"score": 1}})
    new = indicator(T1, extensions={"extension-definition--00000000-0000-4000-8000-000000000001": {"score": 9}})

    # When
    changes = diff(old, new)

    # Then
    assert list(changes.changed) == ["extensions"]


def test_diff_sees_a_marking_change() -> None:
    # Given
    old = indicator(T0)
    new = indicator(T1, object_marking_refs=[TLP2_IDS[Tlp.RED]])

    # When
    changes = diff(old, new)

    # Then
    assert changes.changed == {"object_marking_refs": ([TLP2_IDS[Tlp.AMBER], STATEMENT], [TLP2_IDS[Tlp.RED]])}


def test_diff_of_nested_values_compares_them_whole() -> None:
    # Given
    old = indicator(T0, kill_chain_phases=[{"kill_chain_name": "lockheed", "phase_name": "delivery"}])
    new = indicator(T1, kill_chain_phases=[{"kill_chain_name": "lockheed", "phase_name": "exploitation"}])

    # When
    changes = diff(old, new)

    # Then
    assert list(changes.changed) == ["kill_chain_phases"]


# --- describe ----------------------------------------------------------------------------------------------


def test_describe_is_plain_words_in_a_fixed_order() -> None:
    # Given
    old, new = versions()

    # When
    text = describe(new, T0, T1, diff(old, new))

    # Then
    assert text == (
        f'Update to indicator "Phishing domain": version {T1} replaces {T0}, which you received.\n'
        "- changed confidence: 50 -> 80\n"
        "- added description: Now also hosts a credential form.\n"
        '- removed labels (was ["phishing"])'
    )


def test_describe_shortens_long_values_and_folds_whitespace() -> None:
    # Given
    changes = Changes(added={"description": "word\n\n  " + "x" * 300})

    # When
    line = describe(indicator(), T0, T1, changes).splitlines()[1]

    # Then
    shown = line.removeprefix("- added description: ")
    assert len(shown) == 160
    assert shown.startswith("word xxx")
    assert shown.endswith("…")


def test_describe_uses_the_id_when_there_is_no_name() -> None:
    # Given
    obj = indicator()
    del obj["name"]

    # When
    first = describe(obj, T0, T1, Changes()).splitlines()[0]

    # Then
    assert first == f'Update to indicator "{OBJ_ID}": version {T1} replaces {T0}, which you received.'


# --- change_note -------------------------------------------------------------------------------------------


def test_change_note_fields() -> None:
    # Given
    old, new = versions()
    changes = diff(old, new)

    # When
    note = change_note(new, (T0, T1), changes, HUB_ID, T2)

    # Then
    assert note["type"] == "note"
    assert note["spec_version"] == "2.1"
    assert re.fullmatch(r"note--[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", note["id"])
    assert (note["created"], note["modified"]) == (T2, T2)
    assert note["created_by_ref"] == HUB_ID
    assert note["object_refs"] == [OBJ_ID]
    assert note["object_marking_refs"] == [TLP2_IDS[Tlp.AMBER], STATEMENT]
    assert note["extensions"] == {RENKEI_EXTENSION_ID: new["extensions"][RENKEI_EXTENSION_ID]}
    assert note["abstract"] == "Follow-up: 1 changed, 1 added, 1 removed"
    assert note["x_renkei_changes"] == {
        "previous_version": T0,
        "version": T1,
        "added": ["description"],
        "removed": ["labels"],
        "changed": ["confidence"],
    }


def test_change_note_content_mentions_each_changed_property() -> None:
    # Given
    old, new = versions()

    # When
    note = change_note(new, (T0, T1), diff(old, new), HUB_ID, T2)

    # Then
    assert "- changed confidence: 50 -> 80" in note["content"]
    assert "- added description: Now also hosts a credential form." in note["content"]
    assert '- removed labels (was ["phishing"])' in note["content"]


def test_change_note_id_is_deterministic_per_version_pair() -> None:
    # Given
    old, new = versions()
    changes = diff(old, new)

    # When
    first = change_note(new, (T0, T1), changes, HUB_ID, T2)
    again = change_note(new, (T0, T1), changes, "identity--11111111-2222-4333-8444-555555555555", T1)
    from_other_version = change_note(new, ("2026-10-31T00:00:00.000Z", T1), changes, HUB_ID, T2)

    # Then
    assert again["id"] == first["id"]
    assert from_other_version["id"] != first["id"]


def test_change_note_does_not_share_the_marking_list() -> None:
    # Given
    old, new = versions()

    # When
    note = change_note(new, (T0, T1), diff(old, new), HUB_ID, T2)
    note["object_marking_refs"].append("marking-definition--00000000-0000-4000-8000-000000000000")

    # Then
    assert new["object_marking_refs"] == [TLP2_IDS[Tlp.AMBER], STATEMENT]


def test_change_note_is_valid_stix() -> None:
    # Given
    old, new = versions()

    # When
    note = change_note(new, (T0, T1), diff(old, new), HUB_ID, T2)
    result = validate_instance(note, ValidationOptions(version="2.1"))

    # Then
    assert [str(e) for e in result.errors] == []
    assert result.is_valid is True
