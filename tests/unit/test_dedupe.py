"""Dedupe and follow-ups: new / update / duplicate / stale, and rule 13 (conflicts, loosening by another sender)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.dedupe import Verdict, canonical_version, classify, is_looser
from gateway.model import SenderPolicy, VersionRecord
from gateway.route import Routable
from gateway.scope import to_json
from schemas.config import Scope
from schemas.tlp import Tlp

OBJ_ID = "indicator--3f1c4a8e-0b2d-4c6e-8f9a-1b2c3d4e5f60"
V0 = "2026-11-01T00:00:00.000000Z"
V1 = "2026-11-02T00:00:00.000000Z"
V2 = "2026-11-03T00:00:00.000000Z"
HASH_A = "a" * 64
HASH_B = "b" * 64


def scope(share_with: str | list[str] = "all", *exclude: Any) -> Scope:
    return Scope.model_validate({"share_with": share_with, "exclude": list(exclude)})


def sender(connector: str = "drop", org: str = "Bank A") -> SenderPolicy:
    return SenderPolicy(connector_id=connector, connector_type="stix", org=org)


def incoming(tlp: Tlp = Tlp.AMBER, s: Scope | None = None) -> Routable:
    return Routable(obj={"id": OBJ_ID}, tlp=tlp, scope=s if s is not None else scope(["bank-b"]), hops=())


def held(
    version: str = V1,
    content_hash: str = HASH_A,
    tlp: Tlp = Tlp.AMBER,
    s: Scope | None = None,
    connector: str = "drop",
    org: str = "Bank A",
) -> VersionRecord:
    return VersionRecord(
        object_id=OBJ_ID,
        version=version,
        content_hash=content_hash,
        tlp=tlp.label,
        scope=to_json(s if s is not None else scope(["bank-b"])),
        connector=connector,
        sender_org=org,
        recorded_at="2026-11-02T00:00:01.000000Z",
    )


# --- canonical_version ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stamp",
    ["2026-11-01T00:00:05Z", "2026-11-01T00:00:05.000Z", "2026-11-01T00:00:05.0Z", "2026-11-01T00:00:05.000000Z"],
)
def test_canonical_version_of_equal_instants_is_equal(stamp: str) -> None:
    # Given / When / Then
    assert canonical_version(stamp) == "2026-11-01T00:00:05.000000Z"


def test_canonical_version_keeps_the_fraction() -> None:
    # Given / When / Then
    assert canonical_version("2026-11-01T00:00:05.5Z") == "2026-11-01T00:00:05.500000Z"
    assert canonical_version("2026-11-01T00:00:05.123Z") == "2026-11-01T00:00:05.123000Z"


def test_canonical_versions_sort_as_instants() -> None:
    # Given three instants whose raw spellings sort wrongly as strings
    raw = ["2026-11-01T00:00:05Z", "2026-11-01T00:00:05.5Z", "2026-11-01T00:00:04.999Z"]

    # When
    ordered = sorted(raw, key=canonical_version)

    # Then
    assert ordered == ["2026-11-01T00:00:04.999Z", "2026-11-01T00:00:05Z", "2026-11-01T00:00:05.5Z"]
    assert sorted(raw) != ordered


@pytest.mark.parametrize("stamp", ["sha256:" + "0" * 32, "not a time"])
def test_canonical_version_passes_other_keys_through(stamp: str) -> None:
    # Given / When / Then
    assert canonical_version(stamp) == stamp


# --- classify ---------------------------------------------------------------------------------------------------


def test_first_version_is_new() -> None:
    # Given / When / Then
    assert classify(V1, HASH_A, incoming(), sender(), latest=None, same=None) is Verdict.NEW


def test_later_version_is_an_update() -> None:
    # Given / When / Then
    assert classify(V2, HASH_B, incoming(), sender(), latest=held(V1), same=None) is Verdict.UPDATE


def test_same_version_same_content_is_a_duplicate() -> None:
    # Given
    record = held(V1, HASH_A)

    # When / Then
    assert classify(V1, HASH_A, incoming(), sender(), latest=record, same=record) is Verdict.DUPLICATE


def test_earlier_version_is_stale() -> None:
    # Given / When / Then
    assert classify(V0, HASH_B, incoming(), sender(), latest=held(V1), same=None) is Verdict.STALE


def test_same_version_other_content_is_a_conflict_even_from_the_same_sender() -> None:
    # Given
    record = held(V1, HASH_A)

    # When
    verdict = classify(V1, HASH_B, incoming(), sender(), latest=record, same=record)

    # Then
    assert verdict is Verdict.CONFLICT
    assert verdict.value == "version:conflict"
    assert (verdict.quarantined, verdict.routable) == (True, False)


def test_same_version_other_content_is_a_conflict_even_if_older_than_latest() -> None:
    # Given the hub holds V1 and V2; V1 comes again with other content
    older = held(V1, HASH_A)

    # When / Then
    assert classify(V1, HASH_B, incoming(), sender(), latest=held(V2), same=older) is Verdict.CONFLICT


@pytest.mark.parametrize(
    ("new_tlp", "new_scope"),
    [(Tlp.GREEN, scope(["bank-b"])), (Tlp.AMBER, scope(["bank-b", "fsa"])), (Tlp.AMBER, scope("all"))],
    ids=["weaker-tlp", "more-names", "scope-all"],
)
def test_update_loosened_by_another_connector_is_refused(new_tlp: Tlp, new_scope: Scope) -> None:
    # Given the hub holds AMBER for bank-b from connector drop
    record = held(V1, tlp=Tlp.AMBER, s=scope(["bank-b"]))

    # When another connector sends a looser later version
    verdict = classify(V2, HASH_B, incoming(new_tlp, new_scope), sender("isac-feed", "ISAC"), record, None)

    # Then
    assert verdict is Verdict.LOOSENED
    assert verdict.value == "policy:loosened-by-other-sender"
    assert (verdict.quarantined, verdict.routable) == (True, False)


def test_update_that_drops_an_exclusion_from_another_connector_is_refused() -> None:
    # Given
    record = held(V1, tlp=Tlp.GREEN, s=scope("all", {"kind": "regulator"}))

    # When
    verdict = classify(V2, HASH_B, incoming(Tlp.GREEN, scope("all")), sender("isac-feed", "ISAC"), record, None)

    # Then
    assert verdict is Verdict.LOOSENED


def test_same_connector_other_org_counts_as_another_sender() -> None:
    # Given a mail connector: same connector, another member organisation
    record = held(V1, tlp=Tlp.AMBER)

    # When
    verdict = classify(V2, HASH_B, incoming(Tlp.GREEN), sender("drop", "Bank C"), record, None)

    # Then
    assert verdict is Verdict.LOOSENED


def test_same_sender_may_loosen() -> None:
    # Given
    record = held(V1, tlp=Tlp.AMBER, s=scope(["bank-b"]))

    # When
    verdict = classify(V2, HASH_B, incoming(Tlp.CLEAR, scope("all")), sender(), record, None)

    # Then
    assert verdict is Verdict.UPDATE


def test_another_sender_may_tighten() -> None:
    # Given
    record = held(V1, tlp=Tlp.GREEN, s=scope("all"))

    # When
    verdict = classify(V2, HASH_B, incoming(Tlp.AMBER, scope(["bank-b"])), sender("isac-feed", "ISAC"), record, None)

    # Then
    assert verdict is Verdict.UPDATE


def test_duplicate_that_is_looser_from_another_sender_is_refused() -> None:
    # Given the same content relayed by someone else under a weaker TLP
    record = held(V1, HASH_A, tlp=Tlp.AMBER)

    # When
    verdict = classify(V1, HASH_A, incoming(Tlp.GREEN), sender("isac-feed", "ISAC"), record, record)

    # Then
    assert verdict is Verdict.LOOSENED


def test_duplicate_from_another_sender_at_the_same_level_is_a_duplicate() -> None:
    # Given
    record = held(V1, HASH_A, tlp=Tlp.AMBER)

    # When
    verdict = classify(V1, HASH_A, incoming(Tlp.AMBER), sender("isac-feed", "ISAC"), record, record)

    # Then
    assert verdict is Verdict.DUPLICATE


@pytest.mark.parametrize("held_version", ["sha256:" + "f" * 32, "sha256:" + "0" * 32])
def test_content_versions_always_update(held_version: str) -> None:
    # Given an SCO the hub holds under a content version
    record = held(held_version, HASH_A)

    # When a different content version arrives (its sha256 sorts before or after)
    verdict = classify("sha256:" + "7" * 32, HASH_B, incoming(), sender(), latest=record, same=None)

    # Then
    assert verdict is Verdict.UPDATE


def test_verdict_properties() -> None:
    # Given / When / Then
    assert [v for v in Verdict if v.routable] == [Verdict.NEW, Verdict.UPDATE]
    assert [v for v in Verdict if v.quarantined] == [Verdict.CONFLICT, Verdict.LOOSENED]


# --- is_looser ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("new_tlp", "new_scope", "expected"),
    [
        (Tlp.AMBER, scope(["bank-b"]), False),
        (Tlp.RED, scope(["bank-b"]), False),
        (Tlp.AMBER, scope([]), False),
        (Tlp.GREEN, scope(["bank-b"]), True),
        (Tlp.AMBER, scope(["bank-b", "fsa"]), True),
        (Tlp.AMBER_STRICT, scope("all"), True),
    ],
    ids=["same", "stricter-tlp", "narrower-scope", "weaker-tlp", "wider-scope", "stricter-tlp-wider-scope"],
)
def test_is_looser(new_tlp: Tlp, new_scope: Scope, expected: bool) -> None:
    # Given the hub holds AMBER for bank-b
    record = held(tlp=Tlp.AMBER, s=scope(["bank-b"]))

    # When / Then
    assert is_looser(incoming(new_tlp, new_scope), record) is expected


def test_is_looser_reads_the_held_amber_strict_label() -> None:
    # Given
    record = held(tlp=Tlp.AMBER_STRICT)

    # When / Then
    assert is_looser(incoming(Tlp.AMBER), record) is True
    assert is_looser(incoming(Tlp.AMBER_STRICT), record) is False
