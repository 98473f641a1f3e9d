"""The policy checked again at delivery: a config changed since routing can only withhold more."""

from __future__ import annotations

from typing import Any

import pytest

from functions.recheck import recheck
from gateway.intake import Intake, take
from gateway.memory import InMemoryBlobStore, InMemoryStateStore
from gateway.pipeline import Pipeline
from schemas.config import Accepts, HubConfig
from schemas.tlp import Tlp
from tests.unit.stixdata import bundle, indicator, relationship, sid


def hub(**drop: Any) -> HubConfig:
    connector = {
        "id": "drop",
        "type": "stix",
        "sender": {"org": "Org A", "community": "isac-a"},
        "tlp": "GREEN",
        "scope": {"share_with": "all"},
        **drop,
    }
    return HubConfig.model_validate(
        {
            "hub": {"id": "hub-1"},
            "communities": [
                {"id": "isac-a", "kind": "isac", "deliver": [{"pull": {}}]},
                {"id": "isac-b", "kind": "isac", "deliver": [{"pull": {}}]},
                {"id": "fsa", "kind": "regulator", "deliver": [{"pull": {}}]},
            ],
            "connectors": [connector],
        }
    )


class Recorder:
    def __init__(self) -> None:
        self.bundles: dict[str, dict[str, Any]] = {}

    def deliver(self, destination: str, bundle: dict[str, Any]) -> None:
        self.bundles[destination] = bundle


def routed(config: HubConfig, *objects: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The bundles routing made for each destination."""
    channel = Recorder()
    pipeline = Pipeline(config, InMemoryStateStore(), InMemoryBlobStore(), channel)
    take(pipeline, config, "drop", Intake("test", bundle(*objects)))
    return channel.bundles


def ids(bundle: dict[str, Any] | None) -> set[str]:
    return {o["id"] for o in (bundle or {"objects": []})["objects"] if o["type"] == "indicator"}


def test_unchanged_config_lets_the_routed_bundle_through_unchanged() -> None:
    # Given a bundle routed to fsa under the current config
    config = hub()
    bundles = routed(config, indicator("a"), indicator("b"))
    # When it is checked again under the same config
    outcome = recheck(bundles["fsa"], "fsa", config, "drop", None)
    # Then it goes as it was
    assert outcome.bundle == bundles["fsa"]
    assert outcome.withheld == {}
    assert len(outcome.allowed) == 2


def test_a_sender_who_now_excludes_regulators_is_obeyed_before_sending() -> None:
    # Given a bundle routed to the regulator before the sender excluded regulators
    bundles = routed(hub(), indicator("a"))
    now = hub(scope={"share_with": "all", "exclude": [{"kind": "regulator"}]})
    # When the deliverer checks it against the config as it is now
    outcome = recheck(bundles["fsa"], "fsa", now, "drop", None)
    # Then nothing goes, with the routing reason
    assert outcome.bundle is None
    assert outcome.withheld == {sid("indicator", "a"): "scope:excluded-kind:regulator"}
    # and other destinations are unaffected
    assert recheck(bundles["isac-b"], "isac-b", now, "drop", None).bundle == bundles["isac-b"]


def test_a_community_whose_kind_changed_is_decided_by_its_new_kind() -> None:
    # Given isac-b received GREEN routing, then the sender excludes regulators and isac-b becomes a regulator
    config = hub(scope={"share_with": "all", "exclude": [{"kind": "regulator"}]})
    bundles = routed(config, indicator("a"))
    changed = config.model_copy(
        update={
            "communities": [
                c if c.id != "isac-b" else c.model_copy(update={"kind": "regulator"}) for c in config.communities
            ]
        }
    )
    # When / Then
    assert recheck(bundles["isac-b"], "isac-b", changed, "drop", None).bundle is None


def test_a_stricter_sender_tlp_applies_and_references_to_withheld_objects_are_withheld_too() -> None:
    # Given an indicator and a relationship to it, routed under CLEAR with share_with all
    config = hub(tlp="CLEAR")
    a, b = indicator("a", tlp=Tlp.CLEAR), indicator("b", tlp=Tlp.CLEAR)
    rel = relationship("r", a["id"], b["id"], tlp=Tlp.CLEAR)
    bundles = routed(config, a, b, rel)
    assert ids(bundles["isac-b"]) == {a["id"], b["id"]}
    # When the sender's TLP is now AMBER (AMBER needs the destination named in share_with)
    outcome = recheck(bundles["isac-b"], "isac-b", hub(tlp="AMBER"), "drop", None)
    # Then everything is withheld, the relationship for its reference
    assert outcome.bundle is None
    assert outcome.withheld[a["id"]] == "tlp:amber-not-in-scope"
    assert outcome.withheld[rel["id"]] in {"tlp:amber-not-in-scope", "ref:referenced-object-withheld"}


def test_only_the_withheld_object_and_what_refers_to_it_leave_the_bundle() -> None:
    # Given a, b and a relationship a->b routed to isac-b
    config = hub()
    a, b = indicator("a"), indicator("b", confidence=20)
    rel = relationship("r", a["id"], b["id"])
    bundles = routed(config, a, b, rel)
    # When isac-b now only accepts confidence >= 50
    stricter = config.model_copy(
        update={
            "communities": [
                c if c.id != "isac-b" else c.model_copy(update={"accepts": Accepts(min_confidence=50)})
                for c in config.communities
            ]
        }
    )
    stricter = HubConfig.model_validate(stricter.model_dump())
    outcome = recheck(bundles["isac-b"], "isac-b", stricter, "drop", None)
    # Then a still goes; b and the relationship that names it do not
    assert ids(outcome.bundle) == {a["id"]}
    assert outcome.withheld == {b["id"]: "accepts:min-confidence", rel["id"]: "ref:referenced-object-withheld"}
    assert all(o["id"] != rel["id"] for o in outcome.bundle["objects"])  # type: ignore[index]
    # the definitions the kept object needs still travel with it
    assert any(o["type"] == "marking-definition" for o in outcome.bundle["objects"])  # type: ignore[index]


@pytest.mark.parametrize(
    ("destination", "connector", "member", "reason"),
    [
        ("gone", "drop", None, "recheck:destination-removed"),
        ("isac-b", "gone", None, "recheck:connector-removed"),
        ("isac-b", "drop", "*@nobody.example", "recheck:member-removed"),
    ],
)
def test_removed_destinations_connectors_and_members_get_nothing(
    destination: str, connector: str, member: str | None, reason: str
) -> None:
    config = hub()
    bundles = routed(config, indicator("a"))
    outcome = recheck(bundles["isac-b"], destination, config, connector, member)
    assert outcome.bundle is None
    assert outcome.withheld == {sid("indicator", "a"): reason}
