"""The pipeline end to end on the in-memory ports: counts, follow-ups, rule 13, approval, anonymity, loops."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from stix2validator import ValidationOptions, validate_instance

from gateway.errors import PartialDelivery, RetryableError
from gateway.memory import InMemoryBlobStore, InMemoryStateStore
from gateway.normalize import RENKEI_EXTENSION_ID
from gateway.pipeline import Pipeline, RunResult
from gateway.seal import Sealer
from gateway.senders import sender_for
from gateway.tlp import TLP1_IDS, TLP2_IDS
from schemas.config import HubConfig
from schemas.tlp import Tlp
from tests.unit.stixdata import T0, T1, T2, bundle, hub_config, indicator, relationship, sid

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SEAL_KEY = b"s" * 32


class Capture:
    def __init__(self) -> None:
        self.bundles: dict[str, list[dict[str, Any]]] = {}

    def deliver(self, destination: str, bundle: dict[str, Any]) -> None:
        self.bundles.setdefault(destination, []).append(bundle)

    def objects(self, destination: str) -> list[dict[str, Any]]:
        return [o for b in self.bundles.get(destination, []) for o in b["objects"]]

    def ids(self, destination: str, kind: str | None = None) -> set[str]:
        return {o["id"] for o in self.objects(destination) if kind is None or o["type"] == kind}


class Hub:
    def __init__(self, config: HubConfig) -> None:
        self.config = config
        self.state = InMemoryStateStore()
        self.capture = Capture()
        self.pipeline = Pipeline(
            config, self.state, InMemoryBlobStore(), self.capture, clock=lambda: NOW, seal_key=SEAL_KEY
        )

    def ingest(self, raw: bytes, connector: str = "drop") -> RunResult:
        return self.pipeline.ingest(raw, sender_for(self.config, connector), "input.json")


def counts(result: RunResult) -> dict[str, int]:
    return {k: v for k, v in result.summary().items() if k != "deliveries"}


def test_every_object_is_counted_once_in_exactly_one_outcome() -> None:
    # Given an input with a deliverable, a RED, an invalid object and a definition
    hub = Hub(hub_config())
    raw = bundle(
        indicator("ok"),
        indicator("red", Tlp.RED),
        {"type": "indicator", "id": "not-an-id"},
        {"type": "marking-definition", "spec_version": "2.1", "id": TLP2_IDS[Tlp.GREEN], "created": T0},
    )
    # When it is ingested
    result = hub.ingest(raw)
    # Then definitions are not counted and the rest adds up
    assert counts(result) == {
        "objects": 3, "delivered": 1, "withheld": 1, "pending": 0, "quarantined": 1, "duplicate": 0
    }  # fmt: skip
    assert [q.reason for q in result.quarantined] == ["stix:invalid-id"]


def test_an_unreadable_input_counts_as_one_quarantined_object() -> None:
    hub = Hub(hub_config())
    result = hub.ingest(b"\x00\xffnot json at all")
    assert counts(result)["objects"] == 1 and counts(result)["quarantined"] == 1
    assert result.quarantined[0].reason == "json:not-utf8"


def test_the_same_input_twice_is_all_duplicates_and_delivers_nothing() -> None:
    hub = Hub(hub_config())
    raw = bundle(indicator("a"), indicator("b"))
    hub.ingest(raw)
    second = hub.ingest(raw)
    assert counts(second) == {
        "objects": 2, "delivered": 0, "withheld": 0, "pending": 0, "quarantined": 0, "duplicate": 2
    }  # fmt: skip
    assert second.deliveries == {}


def test_a_follow_up_carries_a_note_saying_what_changed_against_what_that_destination_has() -> None:
    # Given v1 delivered
    hub = Hub(hub_config())
    hub.ingest(bundle(indicator("campaign", description="first report")))
    # When v2 arrives with a changed description and a new label
    v2 = indicator("campaign", modified=T1, description="second report", labels=["smishing"])
    result = hub.ingest(bundle(v2))
    # Then every destination that had v1 gets v2 and a note about exactly those changes
    notes = [o for o in hub.capture.objects("power-isac") if o["type"] == "note"]
    assert len(notes) == 1
    note = notes[0]
    assert note["object_refs"] == [v2["id"]]
    assert note["object_marking_refs"] == [TLP2_IDS[Tlp.GREEN]]
    assert note["x_renkei_changes"]["changed"] == ["description"]
    assert note["x_renkei_changes"]["added"] == ["labels"]
    assert "first report -> second report" in note["content"]
    assert {f["destination"] for f in result.followups} == {"finance-isac", "power-isac", "bank-b", "fsa"}


def test_an_older_version_after_a_newer_one_is_stale_and_not_delivered() -> None:
    hub = Hub(hub_config())
    hub.ingest(bundle(indicator("x", modified=T2)))
    result = hub.ingest(bundle(indicator("x", modified=T1)))
    assert counts(result)["duplicate"] == 1 and result.deliveries == {}


def test_same_version_with_other_content_is_a_conflict_not_a_duplicate() -> None:
    hub = Hub(hub_config())
    hub.ingest(bundle(indicator("x", description="one")))
    result = hub.ingest(bundle(indicator("x", description="two")))
    assert [q.reason for q in result.quarantined] == ["version:conflict"]
    assert counts(result)["duplicate"] == 0


def test_a_looser_later_version_from_another_connector_is_quarantined() -> None:
    # Given v1 at AMBER from `drop`
    hub = Hub(hub_config({"scope": {"share_with": ["power-isac"]}}))
    hub.ingest(bundle(indicator("x", Tlp.AMBER)))
    # When someone else sends v2 at CLEAR
    result = hub.ingest(bundle(indicator("x", Tlp.CLEAR, modified=T1)), connector="other")
    # Then it is a policy violation
    assert [q.reason for q in result.quarantined] == ["policy:loosened-by-other-sender"]
    assert result.deliveries == {}


def test_the_original_sender_may_loosen_its_own_object() -> None:
    hub = Hub(hub_config({"tlp": "CLEAR", "scope": {"share_with": ["power-isac"]}}))
    hub.ingest(bundle(indicator("x", Tlp.AMBER)))
    result = hub.ingest(bundle(indicator("x", Tlp.GREEN, modified=T1)))
    assert result.quarantined == []
    assert result.deliveries["finance-isac"] == 1  # GREEN reaches the sender's own community


def test_approval_holds_everything_until_approved_and_a_resend_meanwhile_is_a_duplicate() -> None:
    hub = Hub(hub_config({"approval": "required"}))
    held = hub.ingest(bundle(indicator("x")))
    assert counts(held)["pending"] == 1 and hub.capture.bundles == {}
    assert counts(hub.ingest(bundle(indicator("x"))))["duplicate"] == 1
    # When approved
    pending_id = hub.state.pending()[0].pending_id
    released = hub.pipeline.approve(pending_id, sender_for(hub.config, "drop"))
    # Then it is routed, and a second approval finds nothing
    assert released is not None and counts(released)["delivered"] == 1
    assert sid("indicator", "x") in hub.capture.ids("power-isac")
    assert hub.pipeline.approve(pending_id, sender_for(hub.config, "drop")) is None


def test_anonymised_sender_leaves_no_trace_in_any_delivery() -> None:
    # Given a sender that wants anonymity and redacts its domain, an internal range and its name
    canary_ip, canary_domain = "10.20.3.4", "corp.bank-a.example"
    config = hub_config(
        {
            "sender": {"org": "Bank A", "community": "finance-isac"},
            "anonymize": {"redact": ["10.20.0.0/16", "bank-a.example"]},
        }
    )
    hub = Hub(config)
    me = {"type": "identity", "spec_version": "2.1", "id": sid("identity", "bank-a"), "created": T0, "modified": T0,
          "name": "Bank A", "identity_class": "organization"}  # fmt: skip
    report_text = f"Seen from {canary_ip} on {canary_domain} at Bank A"
    internal = indicator("internal", pattern=f"[ipv4-addr:value = '{canary_ip}']")
    public = indicator("public", created_by_ref=me["id"], description=report_text)
    # When ingested
    hub.ingest(bundle(me, internal, public))
    # Then nothing delivered names the sender, its identity, or a private value
    delivered = orjson.dumps(hub.capture.bundles).decode()
    for secret in (canary_ip, canary_domain, "bank-a.example", "Bank A", me["id"]):
        assert secret not in delivered
    assert public["id"] in hub.capture.ids("power-isac") and internal["id"] not in hub.capture.ids("power-isac")
    # And the sealed mapping leads back to the sender
    source = next(o for o in hub.capture.objects("power-isac") if o["id"] == public["id"])["extensions"][
        RENKEI_EXTENSION_ID
    ]["source"]
    sealed = hub.state.get_seal(source["pseudonym"])
    assert sealed is not None and Sealer(SEAL_KEY).open(source["pseudonym"], sealed)["org"] == "Bank A"


def test_an_object_that_already_passed_through_this_hub_is_dropped() -> None:
    hub = Hub(hub_config())
    looped = indicator("x")
    looped["extensions"] = {
        RENKEI_EXTENSION_ID: {"extension_type": "property-extension", "tlp": "GREEN",
                              "scope": {"share_with": "all", "exclude": []}, "hops": ["hub-b", "hub-a"]}
    }  # fmt: skip
    result = hub.ingest(bundle(looped))
    assert counts(result)["withheld"] == 1
    assert {d.reason for d in result.decisions} == {"loop:hub-in-hop-list"}


def test_a_carried_scope_narrows_the_connectors_scope() -> None:
    # Given a connector that shares with all, and an object whose earlier hop allowed only power-isac
    hub = Hub(hub_config({"tlp": "CLEAR"}))
    relayed = indicator("x", Tlp.CLEAR)
    relayed["extensions"] = {
        RENKEI_EXTENSION_ID: {"extension_type": "property-extension", "tlp": "GREEN",
                              "scope": {"share_with": ["power-isac"], "exclude": []}, "hops": ["hub-b"]}
    }  # fmt: skip
    hub.ingest(bundle(relayed))
    # Then only the intersection receives it, at the carried TLP, and the hop list grows
    receivers = {d for d in ("finance-isac", "power-isac", "bank-b", "fsa") if hub.capture.ids(d, "indicator")}
    assert receivers == {"finance-isac", "power-isac"}  # GREEN: own community, and the one named
    ext = hub.capture.objects("power-isac")[-1]["extensions"][RENKEI_EXTENSION_ID]
    assert ext["tlp"] == "GREEN" and ext["hops"] == ["hub-b", "hub-a"]


def test_a_relationship_to_an_object_withheld_in_an_earlier_run_is_withheld_too() -> None:
    hub = Hub(hub_config({"scope": {"share_with": ["power-isac"]}}))
    secret = indicator("secret", Tlp.AMBER)
    hub.ingest(bundle(secret))
    rel = relationship("r", sid("indicator", "public"), secret["id"])
    unknown_target = relationship("r2", sid("indicator", "public"), sid("malware", "never-seen"))
    result = hub.ingest(bundle(indicator("public"), rel, unknown_target))
    reasons = {(d.object, d.destination): d.reason for d in result.decisions}
    assert reasons[(rel["id"], "finance-isac")] == "ref:referenced-object-withheld"
    assert reasons[(rel["id"], "power-isac")] == "tlp:green-in-scope"  # the AMBER one went there
    assert reasons[(unknown_target["id"], "finance-isac")] == "tlp:green-own-community"  # never seen: no matter


def test_legacy_destinations_also_get_tlp1_ids_never_weaker() -> None:
    config = hub_config({"tlp": "CLEAR", "scope": {"share_with": ["bank-b"]}})
    data = config.model_dump(mode="json")
    data["communities"][2]["tlp_ids"] = ["2.0", "1.0"]
    hub = Hub(HubConfig.model_validate(data))
    hub.ingest(bundle(indicator("strict", Tlp.AMBER_STRICT)))
    obj = next(o for o in hub.capture.objects("bank-b") if o["type"] == "indicator")
    assert obj["object_marking_refs"] == [TLP2_IDS[Tlp.AMBER_STRICT], TLP1_IDS[Tlp.RED]]
    shipped = {o["id"] for o in hub.capture.objects("bank-b") if o["type"] == "marking-definition"}
    assert {TLP2_IDS[Tlp.AMBER_STRICT], TLP1_IDS[Tlp.RED]} <= shipped


def test_a_failing_channel_is_reported_as_undelivered_and_not_recorded_as_delivered() -> None:
    class Down:
        def deliver(self, destination: str, bundle: dict[str, Any]) -> None:
            raise RetryableError("down")

    config = hub_config()
    state = InMemoryStateStore()
    pipeline = Pipeline(config, state, InMemoryBlobStore(), Down(), clock=lambda: NOW)
    result = pipeline.ingest(bundle(indicator("x")), sender_for(config, "drop"), "x.json")
    assert result.undelivered == {"finance-isac": 1, "power-isac": 1, "bank-b": 1, "fsa": 1}
    assert state.delivered({("power-isac", sid("indicator", "x"))}) == {}


def test_a_partial_delivery_records_what_arrived_and_reports_the_rest_undelivered() -> None:
    class Half:
        def deliver(self, destination: str, bundle: dict[str, Any]) -> None:
            raise PartialDelivery("one failed", frozenset({sid("indicator", "y")}))

    config = hub_config()
    state = InMemoryStateStore()
    pipeline = Pipeline(config, state, InMemoryBlobStore(), Half(), clock=lambda: NOW)
    result = pipeline.ingest(bundle(indicator("x"), indicator("y")), sender_for(config, "drop"), "x.json")
    assert result.undelivered["power-isac"] == 1 and result.deliveries["power-isac"] == 1
    held = state.delivered({("power-isac", sid("indicator", "x")), ("power-isac", sid("indicator", "y"))})
    assert set(held) == {("power-isac", sid("indicator", "x"))}


@pytest.mark.parametrize("tlp", list(Tlp))
def test_every_object_the_hub_emits_is_valid_stix(tlp: Tlp) -> None:
    # Given a v1 and a v2 (so a change note is emitted too), to a legacy destination
    config = hub_config({"tlp": "CLEAR", "scope": {"share_with": ["bank-b"]}})
    data = config.model_dump(mode="json")
    data["communities"][2]["tlp_ids"] = ["2.0", "1.0"]
    hub = Hub(HubConfig.model_validate(data))
    hub.ingest(bundle(indicator("x", tlp)))
    hub.ingest(bundle(indicator("x", tlp, modified=T1, description="more")))
    # Then everything any destination received validates (stix2-validator 3.2.0)
    emitted = [o for d in hub.capture.bundles for o in hub.capture.objects(d)]
    if tlp is Tlp.RED:
        assert emitted == []
    for obj in emitted:
        results = validate_instance(obj, ValidationOptions(version="2.1"))
        assert results.is_valid, (obj["type"], [str(e) for e in results.errors])


def test_a_relationship_to_a_quarantined_object_of_the_same_input_is_withheld() -> None:
    # Given an input whose indicator is invalid (modified before created) and a relationship to it
    hub = Hub(hub_config())
    broken = indicator("broken", modified="2020-01-01T00:00:00.000Z")
    rel = relationship("r", sid("indicator", "fine"), broken["id"])
    # When ingested
    result = hub.ingest(bundle(indicator("fine"), broken, rel))
    # Then the relationship does not reveal the quarantined object's id anywhere
    assert [q.reason for q in result.quarantined] == ["stix:modified-before-created"]
    assert {d.reason for d in result.decisions if d.object == rel["id"]} == {"ref:referenced-object-withheld"}
    assert broken["id"] not in orjson.dumps(hub.capture.bundles).decode()
