"""Give and take: a member's sighting reaches the sender of the object it is about, and nobody else."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from stix2validator import validate_instance

from gateway.errors import RetryableError
from gateway.feedback import Feedback, answer_of
from gateway.intake import Intake, take
from gateway.memory import InMemoryBlobStore, InMemoryStateStore
from gateway.normalize import RENKEI_EXTENSION_ID
from gateway.pipeline import Pipeline, hub_identity
from gateway.seal import Sealer
from gateway.senders import origin_ids
from gateway.tlp import TLP2_IDS
from schemas.config import EmailConnector, HubConfig
from schemas.tlp import Tlp
from tests.unit.stixdata import bundle, indicator
from tests.unit.test_pipeline import NOW, SEAL_KEY, Capture

FIN = {"url": "https://taxii.fin-isac.example/api1/", "collection": "91a7b528-80eb-42ed-a74d-c6fbd5a26116"}
REPORTER = "csirt@bank-a.example"
CONFIG = {
    "hub": {"id": "hub-a"},
    "communities": [
        {"id": "finance-isac", "kind": "isac", "deliver": [{"taxii": FIN}]},
        {"id": "power-isac", "kind": "isac", "deliver": [{"pull": {}}]},
        {"id": "ict-isac", "kind": "isac", "deliver": [{"pull": {}}]},
        {"id": "fsa", "kind": "regulator", "deliver": [{"email": {"to": ["cyber@fsa.example"]}}]},
    ],
    "connectors": [
        {"id": "fin-taxii", "type": "taxii", **FIN, "sender": {"org": "Finance ISAC", "community": "finance-isac"},
         "tlp": "GREEN", "scope": {"share_with": ["power-isac"]}},
        {"id": "jvn-feed", "type": "feed", "source": "https://jvn.example/rss.rdf"},
        {"id": "mailbox", "type": "email", "address": "report@hub.example",
         "members": [{"match": "*@bank-a.example", "org": "Bank A", "anonymize": True, "tlp": "AMBER",
                      "scope": {"share_with": ["power-isac"]}}]},
    ],
}  # fmt: skip


class Sent:
    """What the feedback sender was asked to do; fails on demand like a destination that is down."""

    def __init__(self) -> None:
        self.communities: list[tuple[str, dict[str, Any]]] = []
        self.addresses: list[tuple[str, dict[str, Any]]] = []
        self.down = False

    def to_community(self, community_id: str, bundle: dict[str, Any]) -> None:
        if self.down:
            raise RetryableError("HTTP 503")
        self.communities.append((community_id, bundle))

    def to_address(self, address: str, bundle: dict[str, Any]) -> None:
        if self.down:
            raise RetryableError("SES throttled")
        self.addresses.append((address, bundle))


class Hub:
    def __init__(self) -> None:
        self.config = HubConfig.model_validate(CONFIG)
        self.state = InMemoryStateStore()
        self.blobs = InMemoryBlobStore()
        self.pipeline = Pipeline(self.config, self.state, self.blobs, Capture(), clock=lambda: NOW, seal_key=SEAL_KEY)
        self.sent = Sent()
        self.feedback = Feedback(
            self.config, self.state, self.blobs, self.sent, hub_identity(self.config), Sealer(SEAL_KEY), lambda: NOW
        )

    def receive(
        self, connector: str, *objects: dict[str, Any], reporter: str | None = None, check: bool = True
    ) -> None:
        member = None
        if connector == "mailbox":
            mailbox = self.config.connector("mailbox")
            assert isinstance(mailbox, EmailConnector)
            member = mailbox.members[0]
        result = take(self.pipeline, self.config, connector, Intake("in", bundle(*objects), member=member,
                                                                     reporter=reporter))  # fmt: skip
        assert result.summary()["delivered"] == len(objects) or not check


def sighting(of: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "sighting", "spec_version": "2.1", "id": f"sighting--{uuid.uuid4()}",
        "created": "2026-11-10T00:00:00.000Z", "modified": "2026-11-10T00:00:00.000Z", "sighting_of_ref": of,
        "created_by_ref": "identity--6b4e1f55-6f7c-4a9b-9d55-1f0a4cf0a001",
        "where_sighted_refs": ["identity--6b4e1f55-6f7c-4a9b-9d55-1f0a4cf0a001"], **extra,
    }  # fmt: skip


def test_a_sighting_goes_back_to_the_senders_own_system_as_the_hubs_with_the_objects_tlp() -> None:
    hub = Hub()
    shared = indicator("c2", Tlp.AMBER)
    hub.receive("fin-taxii", shared)
    [outcome] = hub.feedback.accept("power-isac", [sighting(shared["id"], count=0)], "post")
    assert outcome.ok, outcome.message
    [(where, sent)] = hub.sent.communities
    assert where == "finance-isac" and not hub.sent.addresses
    [relayed] = [o for o in sent["objects"] if o["type"] == "sighting"]
    assert relayed["created_by_ref"] == hub_identity(hub.config)["id"] and "where_sighted_refs" not in relayed
    assert relayed["object_marking_refs"] == [TLP2_IDS[Tlp.AMBER]]  # never weaker than what it is about
    extension = relayed["extensions"][RENKEI_EXTENSION_ID]
    assert extension["feedback"] == {"from": "power-isac", "answer": "not-seen"}
    assert extension["scope"]["share_with"] == ["finance-isac"]
    for obj in sent["objects"]:
        assert validate_instance(obj).is_valid, obj["type"]


def test_an_anonymous_reporters_feedback_reaches_its_address_through_the_sealed_mapping_only() -> None:
    hub = Hub()
    reported = indicator("phish", Tlp.AMBER)
    hub.receive("mailbox", reported, reporter=REPORTER)
    outcomes = hub.feedback.accept("power-isac", [sighting(reported["id"], count=3)], "post")
    assert [o.ok for o in outcomes] == [True]
    assert [a for a, _ in hub.sent.addresses] == [REPORTER] and not hub.sent.communities
    # the address is in state only sealed: nowhere in the clear
    assert REPORTER.encode() not in repr(hub.state.__dict__).encode()


def test_feedback_with_no_way_back_about_what_was_not_received_or_not_a_sighting_is_refused_and_kept() -> None:
    hub = Hub()
    advisory = indicator("jvn")
    hub.receive("jvn-feed", advisory)
    amber = indicator("amber-for-power-only", Tlp.AMBER)
    hub.receive("fin-taxii", amber)
    posted = [sighting(advisory["id"]), sighting(indicator("never-seen")["id"]), indicator("x"), {"type": 3}]
    outcomes = hub.feedback.accept("power-isac", posted, "post")
    reasons = [o.message.split(":", 2)[:2] for o in outcomes]
    assert [":".join(r) for r in reasons] == [
        "feedback:no-return-path", "feedback:not-received", "feedback:not-a-sighting", "stix:missing-type-or-id"
    ]  # fmt: skip
    assert len(hub.state.quarantined()) == 4 and not hub.sent.communities
    ict = hub.feedback.accept("ict-isac", [sighting(amber["id"])], "post")  # the sender shared it with power-isac only
    assert not ict[0].ok and "not-received" in ict[0].message


def test_the_same_sighting_is_relayed_once_and_a_failed_relay_is_kept_then_retried() -> None:
    hub = Hub()
    shared = indicator("c2")
    hub.receive("fin-taxii", shared)
    seen = sighting(shared["id"])
    hub.sent.down = True
    [failed] = hub.feedback.accept("power-isac", [seen], "post")
    assert not failed.ok and "feedback:undelivered" in failed.message
    assert [q.reason for q in hub.state.quarantined()] == ["feedback:undelivered"]
    hub.sent.down = False
    assert [o.ok for o in hub.feedback.accept("power-isac", [seen, seen], "post")] == [True, True]
    assert len(hub.sent.communities) == 1


def test_answers_are_seen_not_seen_or_unknown() -> None:
    assert answer_of(sighting("x")) == "seen" and answer_of(sighting("x", count=2)) == "seen"
    assert answer_of(sighting("x", count=0)) == "not-seen"
    unknown = sighting("x", extensions={RENKEI_EXTENSION_ID: {"extension_type": "property-extension",
                                                              "answer": "unknown"}})  # fmt: skip
    assert answer_of(unknown) == "unknown"


SOURCES = st.sampled_from(["fin-taxii", "jvn-feed", "mailbox"])
GIVERS = st.sampled_from(["finance-isac", "power-isac", "ict-isac", "fsa"])
LEVELS = st.sampled_from([Tlp.CLEAR, Tlp.GREEN, Tlp.AMBER])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(SOURCES, LEVELS, GIVERS, st.integers(0, 3)), min_size=1, max_size=6))
def test_feedback_only_ever_reaches_the_sender_of_the_object_it_is_about(
    cases: list[tuple[str, Tlp, str, int]],
) -> None:
    hub = Hub()
    for n, (source, level, giver, count) in enumerate(cases):
        obj = indicator(f"obj-{n}", level)
        hub.receive(source, obj, reporter=REPORTER if source == "mailbox" else None, check=False)
        before = (len(hub.sent.communities), len(hub.sent.addresses))
        [outcome] = hub.feedback.accept(giver, [sighting(obj["id"], count=count)], "post")
        received = bool(hub.state.delivered({(giver, obj["id"])}))
        connector = hub.config.connector(source)
        assert connector is not None
        new_communities = hub.sent.communities[before[0] :]
        new_addresses = hub.sent.addresses[before[1] :]
        assert outcome.ok == (received and source != "jvn-feed")
        assert {c for c, _ in new_communities} <= origin_ids(hub.config, connector)
        assert all(a == REPORTER and source == "mailbox" for a, _ in new_addresses)
        for _, sent in new_communities + new_addresses:
            [relayed] = [o for o in sent["objects"] if o["type"] == "sighting"]
            assert Tlp.parse(relayed["extensions"][RENKEI_EXTENSION_ID]["tlp"]) >= level


def test_a_relayed_sighting_never_names_the_member_that_posted_it() -> None:
    hub = Hub()
    shared = indicator("c2")
    hub.receive("fin-taxii", shared)
    hub.feedback.accept("power-isac", [sighting(shared["id"], summary=False)], "post")
    assert hub.sent.communities
    text = repr(hub.sent.communities)
    assert "identity--6b4e1f55-6f7c-4a9b-9d55-1f0a4cf0a001" not in text
