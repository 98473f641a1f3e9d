"""Routing: the contract's rules 2-8 and 11, each with its exact reason."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.model import Decision, SenderPolicy
from gateway.route import HubView, Routable, cvss_base_score, decide
from schemas.config import Community, Scope
from schemas.tlp import Tlp

HUB = HubView(hub_id="hub-a", local_ids=frozenset({"finance-isac", "power-isac", "bank-b", "fsa", "acme-vendor"}))
OBJ_ID = "indicator--3f1c4a8e-0b2d-4c6e-8f9a-1b2c3d4e5f60"
VULN_ID = "vulnerability--3f1c4a8e-0b2d-4c6e-8f9a-1b2c3d4e5f61"
KINDS = ["isac", "ceptoar", "cert", "regulator", "vendor", "organization"]


def community(cid: str, kind: str = "isac", **accepts: Any) -> Community:
    return Community.model_validate({"id": cid, "kind": kind, "deliver": [{"pull": {}}], "accepts": accepts})


def peer(cid: str = "hub-b", hub_id: str | None = None, **accepts: Any) -> Community:
    target = {"url": "https://hub-b.example/peer/inbox", "public_key_env": "HUB_B_KEY"}
    if hub_id is not None:
        target["hub_id"] = hub_id
    return Community.model_validate({"id": cid, "kind": "peer-hub", "deliver": [{"peer": target}], "accepts": accepts})


def sender(community_id: str | None = "finance-isac", origin: frozenset[str] = frozenset()) -> SenderPolicy:
    return SenderPolicy(
        connector_id="drop", connector_type="stix", org="Bank A", community=community_id, origin_ids=origin
    )


def item(
    tlp: Tlp,
    share_with: str | list[str] = "all",
    exclude: tuple[Any, ...] = (),
    hops: tuple[str, ...] = (),
    **obj: Any,
) -> Routable:
    body = {"type": "indicator", "spec_version": "2.1", "id": OBJ_ID, **obj}
    s = Scope.model_validate({"share_with": share_with, "exclude": list(exclude)})
    return Routable(obj=body, tlp=tlp, scope=s, hops=hops)


def vuln(tlp: Tlp = Tlp.CLEAR, **obj: Any) -> Routable:
    return item(tlp, type="vulnerability", id=VULN_ID, name="CVE-2026-0001", **obj)


def verdict(d: Decision) -> tuple[bool, str]:
    return (d.allowed, d.reason)


# --- rule 2: exclusion beats everything ------------------------------------------------------------------


@pytest.mark.parametrize("level", [Tlp.CLEAR, Tlp.GREEN, Tlp.AMBER, Tlp.AMBER_STRICT])
def test_excluded_id_is_withheld_even_when_named(level: Tlp) -> None:
    # Given an organisation both named and excluded
    routable = item(level, share_with=["bank-b"], exclude=("bank-b",))

    # When
    d = decide(routable, sender(), community("bank-b", "organization"), HUB)

    # Then
    assert verdict(d) == (False, "scope:excluded")


def test_excluded_kind_is_withheld_with_the_kind_in_the_reason() -> None:
    # Given a CLEAR object shared with all but regulators
    routable = item(Tlp.CLEAR, exclude=({"kind": "regulator"},))

    # When
    d = decide(routable, sender(), community("fsa", "regulator"), HUB)

    # Then
    assert verdict(d) == (False, "scope:excluded-kind:regulator")


def test_exclusion_beats_green_own_community() -> None:
    # Given GREEN from a finance-isac member who excludes finance-isac
    routable = item(Tlp.GREEN, exclude=("finance-isac",))

    # When
    d = decide(routable, sender("finance-isac"), community("finance-isac"), HUB)

    # Then
    assert verdict(d) == (False, "scope:excluded")


def test_exclusion_beats_a_peer_hub() -> None:
    # Given
    routable = item(Tlp.CLEAR, exclude=({"kind": "peer-hub"},))

    # When
    d = decide(routable, sender(), peer(), HUB)

    # Then
    assert verdict(d) == (False, "scope:excluded-kind:peer-hub")


# --- rule 3: RED ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_red_is_withheld_everywhere(kind: str) -> None:
    # Given RED, shared by name with exactly this destination
    routable = item(Tlp.RED, share_with=["dest"])

    # When
    d = decide(routable, sender(), community("dest", kind), HUB)

    # Then
    assert verdict(d) == (False, "tlp:red")


def test_red_is_withheld_from_a_peer_hub() -> None:
    # Given / When
    d = decide(item(Tlp.RED, share_with=["hub-b"]), sender(), peer(), HUB)

    # Then
    assert verdict(d) == (False, "tlp:red")


# --- rule 4: AMBER+STRICT ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("share_with", "dest", "expected"),
    [
        (["bank-b"], community("bank-b", "organization"), (True, "tlp:amber+strict-named-organization")),
        (["finance-isac"], community("finance-isac", "isac"), (False, "tlp:amber+strict-not-organization")),
        (["fsa"], community("fsa", "regulator"), (False, "tlp:amber+strict-not-organization")),
        (["other-org"], community("bank-b", "organization"), (False, "tlp:amber+strict-not-in-scope")),
        ("all", community("bank-b", "organization"), (False, "tlp:amber+strict-not-in-scope")),
    ],
    ids=["named-org", "named-isac", "named-regulator", "other-org", "all"],
)
def test_amber_strict(share_with: Any, dest: Community, expected: tuple[bool, str]) -> None:
    # Given / When
    d = decide(item(Tlp.AMBER_STRICT, share_with=share_with), sender(), dest, HUB)

    # Then
    assert verdict(d) == expected


def test_amber_strict_is_not_let_through_by_own_community() -> None:
    # Given AMBER+STRICT from a member of bank-b, not naming it
    routable = item(Tlp.AMBER_STRICT, share_with=["fsa"])

    # When
    d = decide(routable, sender("bank-b"), community("bank-b", "organization"), HUB)

    # Then
    assert verdict(d) == (False, "tlp:amber+strict-not-in-scope")


# --- rule 5: AMBER ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("share_with", "expected"),
    [
        (["power-isac"], (True, "tlp:amber-in-scope")),
        ("all", (False, "tlp:amber-not-in-scope")),
        (["bank-b"], (False, "tlp:amber-not-in-scope")),
    ],
    ids=["named", "all-does-not-count", "not-named"],
)
def test_amber(share_with: Any, expected: tuple[bool, str]) -> None:
    # Given / When
    d = decide(item(Tlp.AMBER, share_with=share_with), sender(), community("power-isac"), HUB)

    # Then
    assert verdict(d) == expected


def test_amber_own_community_must_still_be_named() -> None:
    # Given / When
    d = decide(item(Tlp.AMBER, share_with="all"), sender("finance-isac"), community("finance-isac"), HUB)

    # Then
    assert verdict(d) == (False, "tlp:amber-not-in-scope")


# --- rule 6: GREEN ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("share_with", "own", "dest", "expected"),
    [
        (["fsa"], "finance-isac", "finance-isac", (True, "tlp:green-own-community")),
        (["power-isac"], "finance-isac", "power-isac", (True, "tlp:green-in-scope")),
        ("all", "finance-isac", "power-isac", (True, "tlp:green-in-scope")),
        (["fsa"], "finance-isac", "power-isac", (False, "tlp:green-not-in-scope")),
        (["fsa"], None, "finance-isac", (False, "tlp:green-not-in-scope")),
    ],
    ids=["own-community", "named", "all", "not-named", "no-community"],
)
def test_green(share_with: Any, own: str | None, dest: str, expected: tuple[bool, str]) -> None:
    # Given / When
    d = decide(item(Tlp.GREEN, share_with=share_with), sender(own), community(dest), HUB)

    # Then
    assert verdict(d) == expected


# --- rule 7: CLEAR ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("share_with", "expected"),
    [
        ("all", (True, "tlp:clear-in-scope")),
        (["power-isac"], (True, "tlp:clear-in-scope")),
        (["bank-b"], (False, "scope:not-shared-with")),
        ([], (False, "scope:not-shared-with")),
    ],
    ids=["all", "named", "not-named", "nobody"],
)
def test_clear(share_with: Any, expected: tuple[bool, str]) -> None:
    # Given / When
    d = decide(item(Tlp.CLEAR, share_with=share_with), sender(), community("power-isac"), HUB)

    # Then
    assert verdict(d) == expected


def test_clear_is_not_let_through_by_own_community() -> None:
    # Given CLEAR named to someone else only
    routable = item(Tlp.CLEAR, share_with=["fsa"])

    # When
    d = decide(routable, sender("finance-isac"), community("finance-isac"), HUB)

    # Then
    assert verdict(d) == (False, "scope:not-shared-with")


# --- rule 8: accepts only narrows --------------------------------------------------------------------------


def test_accepts_types() -> None:
    # Given a community that takes vulnerabilities only
    dest = community("power-isac", types=["vulnerability"])

    # When
    indicator = decide(item(Tlp.CLEAR), sender(), dest, HUB)
    vulnerability = decide(vuln(), sender(), dest, HUB)

    # Then
    assert verdict(indicator) == (False, "accepts:type")
    assert verdict(vulnerability) == (True, "tlp:clear-in-scope")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"confidence": 40}, (False, "accepts:min-confidence")),
        ({"confidence": 50}, (True, "tlp:clear-in-scope")),
        ({"confidence": 90}, (True, "tlp:clear-in-scope")),
        ({}, (True, "tlp:clear-in-scope")),
    ],
    ids=["below", "equal", "above", "no-confidence"],
)
def test_accepts_min_confidence(extra: dict[str, Any], expected: tuple[bool, str]) -> None:
    # Given
    dest = community("power-isac", min_confidence=50)

    # When
    d = decide(item(Tlp.CLEAR, **extra), sender(), dest, HUB)

    # Then
    assert verdict(d) == expected


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"x_cvss_base_score": 5.0}, (False, "accepts:min-cvss")),
        ({"x_opencti_cvss_base_score": 4.3}, (False, "accepts:min-cvss")),
        ({"x_cvss_base_score": 7.0}, (True, "tlp:clear-in-scope")),
        ({"x_opencti_cvss_base_score": 9.8}, (True, "tlp:clear-in-scope")),
        ({}, (True, "tlp:clear-in-scope")),
    ],
    ids=["x_cvss-below", "opencti-below", "x_cvss-equal", "opencti-above", "no-score"],
)
def test_accepts_min_cvss(extra: dict[str, Any], expected: tuple[bool, str]) -> None:
    # Given
    dest = community("power-isac", min_cvss=7.0)

    # When
    d = decide(vuln(**extra), sender(), dest, HUB)

    # Then
    assert verdict(d) == expected


def test_min_cvss_does_not_apply_to_other_types() -> None:
    # Given an indicator with a low score property
    dest = community("power-isac", min_cvss=7.0)

    # When
    d = decide(item(Tlp.CLEAR, x_cvss_base_score=1.0), sender(), dest, HUB)

    # Then
    assert verdict(d) == (True, "tlp:clear-in-scope")


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"x_cvss_base_score": 5.0}, 5.0),
        ({"x_opencti_cvss_base_score": 6}, 6.0),
        ({"x_cvss": {"base_score": 8.1}}, 8.1),
        ({"extensions": {"extension-definition--1": {"base_score": 7.5}}}, 7.5),
        ({"x_cvss_base_score": 4.0, "x_opencti_cvss_base_score": 9.0}, 9.0),
        ({"x_cvss_base_score": 11.0}, None),
        ({"x_cvss_base_score": True}, None),
        ({"x_cvss_base_score": "9.8"}, None),
        ({}, None),
    ],
    ids=["x_cvss", "opencti-int", "x_cvss-dict", "extension", "highest-wins", "out-of-range", "bool", "string", "none"],
)
def test_cvss_base_score(obj: dict[str, Any], expected: float | None) -> None:
    # Given / When / Then
    assert cvss_base_score({"type": "vulnerability", **obj}) == expected


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (Tlp.CLEAR, (True, "tlp:clear-in-scope")),
        (Tlp.GREEN, (True, "tlp:green-in-scope")),
        (Tlp.AMBER, (False, "accepts:no-secret")),
    ],
)
def test_accepts_secret_false_withholds_amber_and_stricter(level: Tlp, expected: tuple[bool, str]) -> None:
    # Given a community that takes no secrets, named in the scope
    dest = community("power-isac", secret=False)

    # When
    d = decide(item(level, share_with=["power-isac"]), sender(), dest, HUB)

    # Then
    assert verdict(d) == expected


def test_accepts_secret_false_withholds_amber_strict_to_named_organization() -> None:
    # Given / When
    d = decide(
        item(Tlp.AMBER_STRICT, share_with=["bank-b"]), sender(), community("bank-b", "organization", secret=False), HUB
    )

    # Then
    assert verdict(d) == (False, "accepts:no-secret")


def test_accepts_cannot_widen_what_tlp_withholds() -> None:
    # Given a community that accepts everything, AMBER not naming it
    dest = community("power-isac", types=["indicator"], min_confidence=0, secret=True)

    # When
    d = decide(item(Tlp.AMBER, share_with=["bank-b"], confidence=100), sender(), dest, HUB)

    # Then
    assert verdict(d) == (False, "tlp:amber-not-in-scope")


# --- rule 11: origin and hop lists -----------------------------------------------------------------------


def test_nothing_goes_back_to_its_source_system() -> None:
    # Given an object that came from the power-isac TAXII collection
    src = sender(origin=frozenset({"power-isac"}))

    # When
    back = decide(item(Tlp.CLEAR), src, community("power-isac"), HUB)
    elsewhere = decide(item(Tlp.CLEAR), src, community("finance-isac"), HUB)

    # Then
    assert verdict(back) == (False, "origin:source-system")
    assert verdict(elsewhere) == (True, "tlp:clear-in-scope")


def test_hub_in_hop_list_is_withheld_everywhere() -> None:
    # Given an object that already passed through this hub
    routable = item(Tlp.CLEAR, hops=("hub-c", "hub-a"))

    # When
    d = decide(routable, sender(), community("power-isac"), HUB)

    # Then
    assert verdict(d) == (False, "loop:hub-in-hop-list")


def test_hub_in_hop_list_beats_exclusion_and_red() -> None:
    # Given
    routable = item(Tlp.RED, exclude=("power-isac",), hops=("hub-a",))

    # When
    d = decide(routable, sender(), community("power-isac"), HUB)

    # Then
    assert verdict(d) == (False, "loop:hub-in-hop-list")


# --- peer hubs (DESIGN.md "Federation") ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "share_with", "dest", "expected"),
    [
        (Tlp.AMBER_STRICT, ["hub-b"], peer(), (False, "peer:tlp-stays-in-hub")),
        (Tlp.CLEAR, "all", peer(), (True, "peer:scope-all")),
        (Tlp.GREEN, "all", peer(), (True, "peer:scope-all")),
        (Tlp.AMBER, "all", peer(), (True, "peer:scope-all")),
        (Tlp.GREEN, ["remote-isac"], peer(), (True, "peer:scope-reaches-beyond-hub")),
        (Tlp.AMBER, ["finance-isac", "remote-isac"], peer(), (True, "peer:scope-reaches-beyond-hub")),
        (Tlp.AMBER, ["hub-b"], peer(), (True, "peer:named")),
        (Tlp.CLEAR, ["hub-b-prod"], peer("hub-b", hub_id="hub-b-prod"), (True, "peer:named")),
        (Tlp.GREEN, ["finance-isac", "bank-b"], peer(), (False, "peer:scope-within-hub")),
        (Tlp.AMBER, ["power-isac"], peer(), (False, "peer:scope-within-hub")),
    ],
    ids=[
        "amber-strict",
        "clear-all",
        "green-all",
        "amber-all",
        "named-remote-community",
        "amber-named-remote",
        "named-peer",
        "named-peer-hub-id",
        "local-only",
        "amber-local-only",
    ],
)
def test_peer_hub(level: Tlp, share_with: Any, dest: Community, expected: tuple[bool, str]) -> None:
    # Given / When
    d = decide(item(level, share_with=share_with), sender(), dest, HUB)

    # Then
    assert verdict(d) == expected


def test_peer_in_hop_list_is_withheld() -> None:
    # Given an object relayed to us by hub-b
    routable = item(Tlp.CLEAR, hops=("hub-b",))

    # When
    d = decide(routable, sender(), peer("hub-b"), HUB)

    # Then
    assert verdict(d) == (False, "loop:peer-in-hop-list")


def test_peer_known_by_its_hub_id_in_hop_list_is_withheld() -> None:
    # Given a peer community whose hub calls itself hub-b-prod in hop lists
    routable = item(Tlp.CLEAR, hops=("hub-c", "hub-b-prod"))

    # When
    d = decide(routable, sender(), peer("hub-b", hub_id="hub-b-prod"), HUB)

    # Then
    assert verdict(d) == (False, "loop:peer-in-hop-list")


def test_peer_that_sent_it_is_its_source_system() -> None:
    # Given an object that came in on hub-b's connector
    routable = item(Tlp.CLEAR)

    # When
    d = decide(routable, sender(origin=frozenset({"hub-b"})), peer("hub-b"), HUB)

    # Then
    assert verdict(d) == (False, "origin:source-system")


def test_peer_accepts_narrow_too() -> None:
    # Given a peer that takes no secrets
    dest = peer(secret=False)

    # When
    d = decide(item(Tlp.AMBER, share_with=["hub-b"]), sender(), dest, HUB)

    # Then
    assert verdict(d) == (False, "accepts:no-secret")


def test_decision_reads_as_its_verdict() -> None:
    # Given / When / Then
    assert bool(Decision(True, "tlp:clear-in-scope")) is True
    assert bool(Decision(False, "tlp:red")) is False
