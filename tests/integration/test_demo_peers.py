"""`gateway demo` with its real peers: Finance ISAC's medallion TAXII 2.1 server and a second Renkei hub abroad.

The demo runs once, as a user runs it (a real process, `--json`); the assertions are on what it read back from
the medallion collection (over TAXII) and from the partner hub's collections, against the routing rules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from stix2validator import ValidationOptions, validate_instance

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
HUB_AUTHORED = {"note", "identity"}  # follow-up notes and the hub's identity that signs them
FINANCE_TYPES = {"indicator", "vulnerability", "report", "course-of-action", "sighting", "note", "malware",
                 "attack-pattern", "relationship", "identity"}  # fmt: skip


@pytest.fixture(scope="module")
def demo() -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    gateway_bin = Path(sys.executable).parent / "gateway"
    started = time.monotonic()
    done = subprocess.run([str(gateway_bin), "demo", "--json"], capture_output=True, env=env, timeout=120, check=False)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    lines = done.stdout.decode().strip().splitlines()
    assert len(lines) == 1, "stdout holds exactly one JSON object"
    return {**json.loads(lines[0]), "elapsed": elapsed}


def allowed(demo: dict[str, Any], destination: str, connector: str | None = None) -> set[tuple[str, str]]:
    return {
        (a["object"], a["version"])
        for step in demo["steps"]
        if connector is None or step["connector"] == connector
        for a in step["allowed"]
        if a["destination"] == destination
    }


def test_the_demo_finishes_well_under_a_minute_and_every_channel_delivered(demo: dict[str, Any]) -> None:
    assert demo["elapsed"] < 60
    for step in demo["steps"]:
        assert "undelivered" not in step["summary"], (step["connector"], step["summary"])
    assert demo["steps"][0]["connector"] == "fin-isac-taxii"


def test_finance_isacs_medallion_collection_holds_exactly_what_routing_allowed_it(demo: dict[str, Any]) -> None:
    finance = demo["finance_isac_taxii"]
    held = {(o["id"], o["modified"]) for o in finance["objects"]}
    routed = allowed(demo, "finance-isac")
    # Every object version routing allowed is in the collection, read back over TAXII
    assert routed and routed <= held
    # and nothing else but the hub's follow-up notes (and their author)
    extra = {o["type"] for o in finance["objects"] if (o["id"], o["modified"]) not in routed}
    assert extra <= HUB_AUTHORED
    assert any(o["type"] == "note" for o in finance["objects"]), "the JVN update's follow-up note went too"
    # finance-isac's preferences: CVSS >= 7.0, confidence >= 50, only the types it accepts
    assert {o["type"] for o in finance["objects"]} <= FINANCE_TYPES
    scores = [o["cvss"] for o in finance["objects"] if o["type"] == "vulnerability" and o.get("cvss") is not None]
    assert scores and min(scores) >= 7.0
    assert all(o["confidence"] >= 50 for o in finance["objects"] if "confidence" in o)
    below = {w["object"] for s in demo["steps"] for w in s["withheld"]
             if w["destination"] == "finance-isac" and w["reason"] == "accepts:min-cvss"}  # fmt: skip
    assert below and not below & {o["id"] for o in finance["objects"]}
    # Finance ISAC's own indicator was not sent back to it (it is where it came from)
    published = json.loads((EXAMPLES / "finance-isac" / "published.json").read_bytes())
    assert finance["published"] == len(published["objects"])
    assert not {o["id"] for o in published["objects"]} & {o["id"] for o in finance["objects"]}
    assert (
        finance["holds"] == finance["published"] + finance["from_hub"] == demo["steps"][-1]["finance_isac_taxii_holds"]
    )
    # The CVSS update (7.5 -> 9.1) arrived as a second version of the same vulnerability
    versions: dict[str, list[float]] = {}
    for o in finance["objects"]:
        if o["type"] == "vulnerability" and o.get("cvss") is not None:
            versions.setdefault(o["id"], []).append(o["cvss"])
    assert sorted(max(versions.values(), key=len)) == [7.5, 9.1]


def test_the_partner_hub_received_signed_bundles_with_only_what_rules_allow(demo: dict[str, Any]) -> None:
    partner = demo["partner_hub"]
    assert partner["hub"] == "partner-hub"
    assert partner["bundles_verified"] > 0 and partner["refused"] == []
    received = {o["id"]: o for o in partner["received"]}
    routed = {obj for obj, _ in allowed(demo, "partner-federation")}
    # What arrived is what routing allowed for the peer (plus the hub's follow-up notes and their author)
    assert routed <= set(received)
    assert {received[i]["type"] for i in set(received) - routed} <= HUB_AUTHORED
    # Nothing the members scoped to this hub left it: Bank A's report (AMBER, scoped), Bank C's (GREEN, scoped)
    for connector in ("jcsip-mailbox", "isac-drop"):
        decided = {w["object"] for s in demo["steps"] if s["connector"] == connector for w in s["withheld"]}
        assert decided and not decided & set(received), connector
        assert not allowed(demo, "partner-federation", connector)
    # Never RED nor AMBER+STRICT; the one AMBER object (shared with `all`) arrived and went to no community
    assert {o["tlp"] for o in received.values()} <= {"CLEAR", "GREEN", "AMBER", None}
    amber = {i for i, o in received.items() if o["tlp"] == "AMBER"}
    assert len(amber) == 1
    for community, objects in partner["delivered"].items():
        assert not amber & {o["id"] for o in objects}, community
    assert {w["reason"] for w in partner["withheld"] if w["object"] in amber} >= {"tlp:amber-not-in-scope"}


def test_the_partner_hub_passes_on_only_what_each_objects_carried_scope_names(demo: dict[str, Any]) -> None:
    delivered = demo["partner_hub"]["delivered"]
    assert all(delivered.values()), "every partner community received something"
    for community, objects in delivered.items():
        for o in objects:
            share_with = o["scope"].get("share_with", "all")
            assert share_with == "all" or community in share_with, (community, o)
    # Finance ISAC named eu-energy-isac, served by the partner hub: its indicator got there and nowhere else
    indicator = next(o for o in demo["partner_hub"]["received"] if o["type"] == "indicator" and
                     o["scope"].get("share_with") == ["eu-energy-isac", "power-isac"])  # fmt: skip
    holders = {c for c, objects in delivered.items() if indicator["id"] in {o["id"] for o in objects}}
    assert holders == {"eu-energy-isac"}
    # the analysts excluded regulators: their carried scope keeps them from the partner's supervisor too
    excluded = {w["object"] for w in demo["partner_hub"]["withheld"] if w["reason"] == "scope:excluded-kind:regulator"}
    assert excluded and not excluded & {o["id"] for o in delivered["eu-supervisor"]}


def test_finance_isacs_published_bundle_is_valid_stix() -> None:
    bundle = json.loads((EXAMPLES / "finance-isac" / "published.json").read_bytes())
    results = validate_instance(bundle, ValidationOptions(version="2.1"))
    assert results.is_valid, [str(e) for e in results.errors]


def test_the_example_configs_pass_check_with_their_secrets_set(tmp_path: Path) -> None:
    from local.config_file import check_file
    from local.config_file import load_config_or_raise as load
    from local.demo_peers import demo_secrets

    secrets = demo_secrets(load(EXAMPLES / "gateway.yaml"), load(EXAMPLES / "partner-hub.yaml"))
    env = {**secrets, "POWER_CO_1_TAXII_PASSWORD": "x"}
    assert check_file(EXAMPLES / "gateway.yaml", env=env) == []
    assert check_file(EXAMPLES / "partner-hub.yaml", env=env) == []
