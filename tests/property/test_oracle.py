"""The oracle itself, on hand-worked examples from the contract's text: if these fail, the oracle is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from tests.property.oracle import (
    AMBER,
    AMBER_STRICT,
    CLEAR,
    GREEN,
    OPENCTI_AMBER_STRICT,
    RED,
    TLP1,
    TLP2,
    ScopeView,
    effective_tlp,
    expect,
    may_reach_after_relay,
)
from tests.property.strategies import statement_definition, tlp1_definition, unknown_tlp_definition

IND = "indicator--11111111-1111-4111-8111-111111111111"
IND2 = "indicator--22222222-2222-4222-8222-222222222222"
REL = "relationship--33333333-3333-4333-8333-333333333333"
REP = "report--44444444-4444-4444-8444-444444444444"
VULN = "vulnerability--55555555-5555-4555-8555-555555555555"
STATEMENT = "marking-definition--66666666-6666-4666-8666-666666666666"
PATTERN = "attack-pattern--88888888-8888-4888-8888-888888888888"
NEVER_SEEN = "malware--77777777-7777-4777-8777-777777777777"


def config(connector: dict[str, Any], *extra: dict[str, Any]) -> dict[str, Any]:
    """The communities of the contract's example config (gateway.example.yaml), one connector."""
    return {
        "hub": {"id": "jp-cross-sector-hub"},
        "communities": [
            {
                "id": "finance-isac",
                "kind": "isac",
                "deliver": [{"pull": {}}],
                "accepts": {
                    "types": ["indicator", "vulnerability", "report", "relationship", "note", "malware"],
                    "min_confidence": 50,
                    "min_cvss": 7.0,
                    "secret": True,
                },
            },
            {"id": "power-isac", "kind": "isac", "deliver": [{"pull": {}}]},
            {"id": "bank-b", "kind": "organization", "deliver": [{"pull": {}}]},
            {"id": "fsa", "kind": "regulator", "deliver": [{"pull": {}}]},
            {
                "id": "partner-federation",
                "kind": "peer-hub",
                "deliver": [
                    {"peer": {"url": "https://hub.partner.example/peer/inbox", "public_key_env": "PARTNER_KEY"}}
                ],
            },
            *extra,
        ],
        "connectors": [
            {"id": "c", "type": "stix", "sender": {"org": "Hub analysts", "community": "cert-community"}} | connector
        ],
    }


def indicator(object_id: str = IND, **props: Any) -> dict[str, Any]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": object_id,
        "created": "2025-01-01T00:00:00.000Z",
        "modified": "2025-01-01T00:00:00.000Z",
        "pattern": "[ipv4-addr:value = '198.51.100.1']",
        "pattern_type": "stix",
        "valid_from": "2025-01-01T00:00:00.000Z",
        **props,
    }


def reaches(cfg: dict[str, Any], *objects: dict[str, Any]) -> dict[str, set[str]]:
    expected = expect(cfg, "c", {"type": "bundle", "objects": list(objects)})
    return {dest: ids for dest, ids in expected.allowed.items() if ids}


def test_green_with_share_all_reaches_everyone_the_scope_does_not_exclude() -> None:
    # Given the contract example's drop folder: GREEN, share_with all
    cfg = config({"tlp": "GREEN", "scope": {"share_with": "all"}})

    # Then an unmarked indicator (no confidence: min_confidence does not apply) goes everywhere
    assert reaches(cfg, indicator()) == {
        d: {IND} for d in ("finance-isac", "power-isac", "bank-b", "fsa", "partner-federation")
    }


def test_exclude_by_kind_wins_and_min_confidence_narrows() -> None:
    # Given GREEN to all but regulators, and an indicator below finance-isac's min_confidence
    cfg = config({"tlp": "GREEN", "scope": {"share_with": "all", "exclude": [{"kind": "regulator"}]}})

    # Then fsa (rule 2) and finance-isac (rule 8) do not get it
    assert set(reaches(cfg, indicator(confidence=40))) == {"power-isac", "bank-b", "partner-federation"}


def test_green_goes_to_the_senders_own_community_and_the_named_ones() -> None:
    # Given GREEN from a finance-isac member, naming only power-isac
    cfg = config(
        {
            "tlp": "GREEN",
            "sender": {"org": "Bank C", "community": "finance-isac"},
            "scope": {"share_with": ["power-isac"]},
        }
    )

    # Then finance-isac (own community) and power-isac (named); the peer: the scope stays within this hub
    assert set(reaches(cfg, indicator())) == {"finance-isac", "power-isac"}


def test_taxii_sender_never_gets_its_own_objects_back() -> None:
    # Given the contract example's fin-isac-taxii connector (GREEN, its own community, a named peer)
    cfg = config(
        {
            "type": "taxii",
            "url": "https://taxii.fin-isac.example/api1/",
            "collection": "91a7b528",
            "sender": {"org": "Finance ISAC", "community": "finance-isac"},
            "tlp": "GREEN",
            "scope": {"share_with": ["power-isac", "partner-federation"], "exclude": [{"kind": "regulator"}]},
        }
    )

    # Then not back to finance-isac (rule 11), not to bank-b (not named), to power-isac and the named peer
    assert set(reaches(cfg, indicator())) == {"power-isac", "partner-federation"}


def test_amber_needs_a_name_and_share_all_does_not_count() -> None:
    # Given AMBER objects
    named = config({"tlp": "AMBER", "scope": {"share_with": ["power-isac", "fsa"]}})
    to_all = config({"tlp": "AMBER", "scope": {"share_with": "all"}})

    # Then only named local communities; with `all`, no local community (rule 5) but, as the
    # Federation text reads, the peer hub (AMBER may leave; `share_with: all` reaches beyond the hub)
    assert set(reaches(named, indicator())) == {"power-isac", "fsa"}
    assert set(reaches(to_all, indicator())) == {"partner-federation"}


def test_amber_strict_only_to_named_organisations_and_never_to_a_peer() -> None:
    # Given AMBER+STRICT naming an organisation, an ISAC and the peer
    cfg = config({"tlp": "AMBER+STRICT", "scope": {"share_with": ["bank-b", "power-isac", "partner-federation"]}})

    # Then only bank-b (rule 4; Federation: never AMBER+STRICT)
    assert set(reaches(cfg, indicator())) == {"bank-b"}


def test_secret_false_withholds_amber() -> None:
    # Given a community that opted out of secret information
    opted_out = {"id": "ict-isac", "kind": "isac", "deliver": [{"pull": {}}], "accepts": {"secret": False}}
    cfg = config({"scope": {"share_with": ["ict-isac", "power-isac"]}}, opted_out)

    # Then an AMBER object reaches power-isac only; a GREEN one both
    amber = indicator(object_marking_refs=[TLP2[AMBER]])
    green = indicator(IND2, object_marking_refs=[TLP2[GREEN]])
    assert reaches(cfg, amber, green) == {"power-isac": {IND, IND2}, "ict-isac": {IND2}}


def test_min_cvss_applies_to_vulnerabilities_with_a_score() -> None:
    # Given finance-isac's min_cvss 7.0
    cfg = config({})
    low = {"type": "vulnerability", "spec_version": "2.1", "id": VULN, "created": "2025-01-01T00:00:00.000Z",
           "modified": "2025-01-01T00:00:00.000Z", "name": "CVE-2025-1", "x_cvss_base_score": 6.9}  # fmt: skip

    # Then a 6.9 is withheld from it; without a score it would be allowed
    assert "finance-isac" not in reaches(cfg, low)
    assert "finance-isac" in reaches(cfg, {k: v for k, v in low.items() if k != "x_cvss_base_score"})


@pytest.mark.parametrize(
    ("refs", "definitions", "level"),
    [
        ([], {}, CLEAR),
        ([TLP1[GREEN]], {}, GREEN),  # TLP 1.0 id without its definition: the id is enough
        ([TLP1[CLEAR], TLP2[AMBER]], {}, AMBER),  # the strictest wins
        ([OPENCTI_AMBER_STRICT], {}, AMBER_STRICT),
        ([TLP1[RED]], {TLP1[RED]: tlp1_definition(RED, says="white")}, RED),  # the id decides, not the text
        ([STATEMENT], {STATEMENT: statement_definition(STATEMENT, "TLP:AMBER+STRICT")}, AMBER_STRICT),
        ([STATEMENT], {STATEMENT: statement_definition(STATEMENT, "Copyright 2025 ACME")}, CLEAR),
        ([STATEMENT], {STATEMENT: unknown_tlp_definition(STATEMENT)}, RED),  # claims TLP, unknown id
        ([STATEMENT], {}, RED),  # a reference the hub cannot see
    ],
)
def test_effective_tlp_reads_every_dialect(refs: list[str], definitions: dict[str, Any], level: str) -> None:
    assert effective_tlp(indicator(object_marking_refs=refs), definitions, CLEAR) == level


def test_granular_markings_count_for_the_whole_object_and_the_sender_tlp_is_a_floor() -> None:
    granular = indicator(granular_markings=[{"marking_ref": TLP2[RED], "selectors": ["pattern"]}])
    assert effective_tlp(granular, {}, CLEAR) == RED
    assert effective_tlp(indicator(object_marking_refs=[TLP2[CLEAR]]), {}, AMBER) == AMBER
    cfg = config({"tlp": "WHITE"})  # TLP 1.0 word for CLEAR
    assert "bank-b" in reaches(cfg, indicator())


def test_references_withhold_transitively_but_never_seen_objects_do_not_count() -> None:
    # Given a RED indicator, a relationship to it, a report on the relationship, and a relationship
    # to an object the hub has never seen
    cfg = config({"scope": {"share_with": "all"}})
    red = indicator(object_marking_refs=[TLP2[RED]])
    rel = {"type": "relationship", "spec_version": "2.1", "id": REL, "created": "2025-01-01T00:00:00.000Z",
           "modified": "2025-01-01T00:00:00.000Z", "relationship_type": "indicates", "source_ref": IND,
           "target_ref": NEVER_SEEN}  # fmt: skip
    report = {"type": "report", "spec_version": "2.1", "id": REP, "created": "2025-01-01T00:00:00.000Z",
              "modified": "2025-01-01T00:00:00.000Z", "name": "r", "published": "2025-01-01T00:00:00.000Z",
              "object_refs": [REL, NEVER_SEEN]}  # fmt: skip
    to_unseen = {**rel, "id": REL.replace("3333-4333", "3334-4333"), "source_ref": IND2}
    clear = indicator(IND2)

    # Then nothing that leads to the RED indicator goes anywhere; the relationship whose other end was
    # never seen goes wherever its known end goes
    got = reaches(cfg, red, rel, report, to_unseen, clear)
    assert all(IND not in ids and REL not in ids and REP not in ids for ids in got.values())
    assert got["bank-b"] == {IND2, to_unseen["id"]}


def test_references_follow_each_destinations_own_verdict() -> None:
    # Given finance-isac's accepts.types leave out attack patterns
    cfg = config({"scope": {"share_with": "all"}})
    pattern = {"type": "attack-pattern", "spec_version": "2.1", "id": PATTERN,
               "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z", "name": "x"}  # fmt: skip
    rel = {"type": "relationship", "spec_version": "2.1", "id": REL, "created": "2025-01-01T00:00:00.000Z",
           "modified": "2025-01-01T00:00:00.000Z", "relationship_type": "indicates", "source_ref": IND,
           "target_ref": pattern["id"]}  # fmt: skip

    # Then the relationship is withheld from finance-isac only (its accepts.types drop the attack pattern)
    got = reaches(cfg, indicator(), pattern, rel)
    assert got["finance-isac"] == {IND}
    assert REL in got["power-isac"]


def test_peer_hub_needs_a_scope_beyond_this_hub() -> None:
    # Given CLEAR shared with local communities only, then also with an id this hub does not serve
    local = config({"scope": {"share_with": ["bank-b", "power-isac"]}})
    remote = config({"scope": {"share_with": ["bank-b", "eu-energy-isac"]}})
    no_peers = config({"scope": {"share_with": ["eu-energy-isac"], "exclude": [{"kind": "peer-hub"}]}})

    assert "partner-federation" not in reaches(local, indicator())
    assert "partner-federation" in reaches(remote, indicator())
    assert reaches(no_peers, indicator()) == {}


def test_red_goes_nowhere() -> None:
    cfg = config({"scope": {"share_with": ["bank-b", "partner-federation"]}})
    assert reaches(cfg, indicator(object_marking_refs=[TLP1[RED]])) == {}


def test_after_a_relay_a_community_is_reachable_only_as_the_original_scope_allows() -> None:
    named = ScopeView(frozenset({"bank-z"}), frozenset(), frozenset({"regulator"}))
    assert may_reach_after_relay(named, AMBER, None, "bank-z", "organization")
    assert not may_reach_after_relay(named, AMBER, None, "other", "isac")
    assert not may_reach_after_relay(named, CLEAR, None, "bank-z", "regulator")
    everyone = ScopeView(None, frozenset(), frozenset())
    assert not may_reach_after_relay(everyone, AMBER, None, "any", "isac")
    assert may_reach_after_relay(everyone, GREEN, None, "any", "isac")
    assert not may_reach_after_relay(everyone, AMBER_STRICT, None, "any", "organization")
