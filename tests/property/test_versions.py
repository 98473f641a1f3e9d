"""Rule 13 and follow-ups: conflicts and loosening by others are quarantined; updates arrive with a change note."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.property.harness import CONNECTOR, Hub, content_of, delivered_ids
from tests.property.oracle import TLP2, ScopeView, effective_tlp, expect, is_looser, sender_of
from tests.property.strategies import SCO_TYPES, TLP_WORDS, bundles, hub_configs, stamp

OTHER = "second-folder"
DEFINITIONS = ("marking-definition", "extension-definition")


def later(obj: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The next version of an object: `modified` one second later, with `changes` applied."""
    modified = datetime.fromisoformat(obj["modified"].replace("Z", "+00:00")) + timedelta(seconds=1)
    return {**copy.deepcopy(obj), "modified": stamp(modified), **changes}


def next_versions(bundle: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A bundle with the next version of every SDO and SRO (SCOs have no versions) and the same definitions."""
    objects = [
        o if o["type"] in DEFINITIONS else later(o, **changes) for o in bundle["objects"] if o["type"] not in SCO_TYPES
    ]
    return {**bundle, "objects": objects}


@st.composite
def other_connector(draw: st.DrawFn, config: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A second stix connector of another sender, its scope the same as, narrower or wider than the first's."""
    first = config["connectors"][0]
    scope = copy.deepcopy(first.get("scope") or {"share_with": "all"})
    relation = draw(st.sampled_from(("same", "narrower", "wider")))
    if relation == "narrower":
        if scope.get("share_with", "all") == "all":
            scope["share_with"] = [c["id"] for c in config["communities"]][:1]
        else:
            scope["share_with"] = scope["share_with"][:-1]
    elif relation == "wider" and scope.get("share_with", "all") != "all":
        scope["share_with"] = "all"
    else:
        relation = "same"
    second = {"id": OTHER, "type": "stix", "sender": {"org": "Someone else"}, "scope": scope}
    if draw(st.booleans()):
        second["tlp"] = draw(st.sampled_from(TLP_WORDS))
    return second, relation


@given(config=hub_configs(), bundle=bundles(), data=st.data())
def test_same_version_with_other_content_is_quarantined_never_a_duplicate(
    config: dict[str, Any], bundle: dict[str, Any], data: st.DataObject
) -> None:
    # Given a hub that holds a bundle's objects
    hub = Hub(config)
    hub.ingest(bundle)
    versioned = [o["id"] for o in bundle["objects"] if o["type"] not in (*DEFINITIONS, *SCO_TYPES)]
    changed = set(data.draw(st.lists(st.sampled_from(versioned), unique=True)) if versioned else [])

    # When the same ids and `modified` come again, some with other content
    resent = copy.deepcopy(bundle)
    for obj in resent["objects"]:
        if obj["id"] in changed:
            obj["description"] = obj.get("description", "") + " (edited)"
    result = hub.ingest(resent)

    # Then the edited ones are quarantined, the rest are duplicates, and nothing is delivered
    assert result.counts.get("quarantined", 0) == len(changed), [q.reason for q in result.quarantined]
    assert result.counts.get("duplicate", 0) == result.counts["objects"] - len(changed)
    assert {q.object_id for q in result.quarantined} == changed
    assert not result.bundles


@given(config=hub_configs(), bundle=bundles(), data=st.data())
def test_a_looser_later_version_from_another_sender_is_quarantined(
    config: dict[str, Any], bundle: dict[str, Any], data: st.DataObject
) -> None:
    # Given a hub holding objects from its first connector, and a second sender's connector
    second, relation = data.draw(other_connector(config))
    config = {**config, "connectors": [*config["connectors"], second]}
    hub = Hub(config)
    first_run = expect(config, CONNECTOR, bundle)
    hub.ingest(bundle)
    update = next_versions(bundle)
    if not any(o["type"] not in DEFINITIONS for o in update["objects"]):
        return

    # When the second sender sends the next versions of the same objects
    result = hub.ingest(update, OTHER)

    # Then exactly the versions that are looser than what the hub holds (weaker TLP, wider scope) are
    # quarantined; the others are routed
    first, other = sender_of(config, CONNECTOR), sender_of(config, OTHER)
    definitions = {o["id"]: o for o in update["objects"] if o["type"] in DEFINITIONS}
    looser = {
        o["id"]
        for o in update["objects"]
        if o["type"] not in DEFINITIONS
        and is_looser(effective_tlp(o, definitions, other.tlp), other.scope, first_run.tlp[o["id"]], first.scope)
    }
    quarantined = {q.object_id for q in result.quarantined}
    assert quarantined == looser, (
        f"scope {relation}: first {_describe(first.tlp, first.scope)}, second {_describe(other.tlp, other.scope)}; "
        f"quarantined {sorted(quarantined)}, looser {sorted(looser)}; reasons {[q.reason for q in result.quarantined]}"
    )
    delivered = {o["id"] for sent in result.bundles.values() for o in content_of(sent)}
    assert not delivered & looser


@given(config=hub_configs(), bundle=bundles())
def test_an_update_goes_where_the_first_version_went_with_a_note_as_marked_as_its_object(
    config: dict[str, Any], bundle: dict[str, Any]
) -> None:
    # Given a hub that delivered a bundle
    hub = Hub(config)
    first = hub.ingest(bundle)
    update = next_versions(bundle, description="Updated: now also seen in the power sector.")
    input_ids = {o["id"] for o in update["objects"] if o["type"] not in DEFINITIONS}

    # When the same connector sends the next versions
    result = hub.ingest(update)

    # Then each destination gets the update of exactly what it got before, and with each a change note
    # that refers to it and carries the same TLP
    problems = []
    for dest in config["communities"]:
        before = delivered_ids(first, dest["id"], input_ids)
        now = delivered_ids(result, dest["id"], input_ids)
        if before != now:
            problems.append(f"{dest['id']}: first version went to {sorted(before)}, update to {sorted(now)}")
        sent = content_of(result.bundles.get(dest["id"], []))
        by_id = {o["id"]: o for o in sent}
        extra = [o for o in sent if o["id"] not in input_ids]
        notes = [o for o in extra if o["type"] == "note"]
        if any(o["type"] not in ("note", "identity") for o in extra):  # the hub's identity authors the notes
            problems.append(f"{dest['id']}: unexpected objects {[o['id'] for o in extra]}")
        types = (dest.get("accepts") or {}).get("types")
        expected_notes = now if types is None or "note" in types else set()
        noted = {ref for note in notes for ref in note.get("object_refs", [])}
        if noted != expected_notes:
            problems.append(f"{dest['id']}: notes refer to {sorted(noted)}, updates {sorted(expected_notes)}")
        for note in notes:
            tlp = [r for r in note.get("object_marking_refs", []) if r in TLP2.values()]
            targets = [by_id.get(r) for r in note.get("object_refs", [])]
            if any(t is None or [r for r in t["object_marking_refs"] if r in TLP2.values()] != tlp for t in targets):
                problems.append(f"{dest['id']}: note {note['id']} {tlp} does not match its objects")
    assert not problems, "\n".join(problems)


def _describe(level: str, scope: ScopeView) -> str:
    share = "all" if scope.share_with is None else sorted(scope.share_with)
    return f"{level} share_with={share} exclude={sorted(scope.exclude_ids)}+{sorted(scope.exclude_kinds)}"
