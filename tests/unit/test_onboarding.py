"""Onboarding diffs as people read them, the widenings they record, schedules, the store's versions, the cache."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.errors import ConflictError, NotOnboarded
from gateway.memory import InMemoryBlobStore, InMemoryStateStore
from gateway.onboarding import (
    CachedRegistry,
    ChangeRecord,
    Schedule,
    change_record,
    config_from_json,
    config_json,
    config_sha256,
    diff_configs,
    schedules_of,
    widenings_of,
)
from gateway.pipeline import Pipeline
from gateway.registry_memory import InMemoryRegistryStore
from gateway.senders import sender_for
from schemas.config import HubConfig
from tests.unit.stixdata import bundle, hub_config, indicator, sid

BASE: dict[str, Any] = {
    "hub": {"id": "hub-a", "name": "Hub A"},
    "communities": [
        {"id": "finance-isac", "kind": "isac", "deliver": [{"pull": {}}]},
        {"id": "power-isac", "kind": "isac", "deliver": [{"pull": {}}]},
        {"id": "bank-b", "kind": "organization", "deliver": [{"pull": {}}]},
        {"id": "fsa", "kind": "regulator", "deliver": [{"email": {"to": ["cyber@fsa.example"]}}]},
    ],
    "connectors": [
        {
            "id": "fin-taxii",
            "type": "taxii",
            "url": "https://taxii.fin.example/api1/",
            "collection": "c1",
            "sender": {"org": "Finance ISAC", "community": "finance-isac"},
            "tlp": "GREEN",
            "scope": {"share_with": ["power-isac", "fsa"], "exclude": []},
        },
        {"id": "advisories", "type": "feed", "source": "https://cert.example/rss", "tlp": "CLEAR"},
        {
            "id": "mailbox",
            "type": "email",
            "address": "report@hub.example",
            "tlp": "AMBER",
            "scope": {"share_with": ["finance-isac"]},
            "members": [
                {
                    "match": "*@bank-a.example",
                    "org": "Bank A",
                    "community": "finance-isac",
                    "tlp": "AMBER",
                    "scope": {"share_with": ["finance-isac", "power-isac"], "exclude": [{"kind": "regulator"}]},
                    "approval": "required",
                }
            ],
        },
    ],
}


def config(edit: Any = None) -> HubConfig:
    data = copy.deepcopy(BASE)
    if edit is not None:
        edit(data)
    return HubConfig.model_validate(data)


def connector(data: dict[str, Any], connector_id: str) -> dict[str, Any]:
    return next(c for c in data["connectors"] if c["id"] == connector_id)


def member(data: dict[str, Any]) -> dict[str, Any]:
    member: dict[str, Any] = connector(data, "mailbox")["members"][0]
    return member


# --- the diff, as people read it ---------------------------------------------------------------------


def test_same_config_is_an_empty_diff() -> None:
    # Given / When
    diff = diff_configs(config(), config())

    # Then
    assert diff.is_empty
    assert diff.render() == []


def test_first_onboard_adds_everything_with_its_fields() -> None:
    # Given nothing onboarded / When
    lines = diff_configs(None, config()).render()

    # Then
    assert "+ hub hub-a: name: Hub A" in lines
    assert "+ community fsa" in lines
    assert "    kind: regulator" in lines
    assert "+ connector fin-taxii" in lines
    assert "    scope: {share_with: [power-isac, fsa], exclude: []}" in lines
    assert "+ member *@bank-a.example of mailbox" in lines
    assert "    approval: required" in lines
    assert not diff_configs(None, config()).widenings


def test_scope_changes_are_spelled_out() -> None:
    # Given share_with loses fsa and gains bank-b, and regulators get excluded
    def edit(data: dict[str, Any]) -> None:
        connector(data, "fin-taxii")["scope"] = {
            "share_with": ["power-isac", "bank-b"],
            "exclude": [{"kind": "regulator"}],
        }

    # When
    lines = diff_configs(config(), config(edit)).render()

    # Then
    assert lines[:3] == [
        "~ connector fin-taxii",
        "    scope.share_with: +bank-b -fsa",
        "    scope.exclude: +{kind: regulator}",
    ]


def test_changed_fields_read_old_to_new() -> None:
    # Given
    def edit(data: dict[str, Any]) -> None:
        data["hub"]["name"] = "Hub A prime"
        data["communities"][1]["accepts"] = {"min_confidence": 70}
        data["communities"][3]["deliver"][0]["email"]["to"] = ["cyber@fsa.example", "soc@fsa.example"]

    # When
    lines = diff_configs(config(), config(edit)).render()

    # Then
    assert "~ hub hub-a: name: Hub A -> Hub A prime" in lines
    assert "~ community power-isac: accepts.min_confidence: (not set) -> 70" in lines
    assert any(
        line.startswith("~ community fsa: deliver: +{email: {to: [cyber@fsa.example, soc@fsa.example]}}")
        for line in lines
    )


def test_removed_community_and_connector_are_named() -> None:
    # Given
    def edit(data: dict[str, Any]) -> None:
        data["communities"] = [c for c in data["communities"] if c["id"] != "bank-b"]
        data["connectors"] = [c for c in data["connectors"] if c["id"] != "mailbox"]

    # When
    diff = diff_configs(config(), config(edit))

    # Then
    assert diff.names("community", "removed") == ["bank-b"]
    assert "- community bank-b (organization)" in diff.render()
    assert "- connector mailbox (email, with its 1 member(s))" in diff.render()
    assert not any("member" in line and line.startswith("- member") for line in diff.render())


def test_members_are_keyed_by_mailbox_and_match() -> None:
    # Given a second member joins, the first changes its org
    def edit(data: dict[str, Any]) -> None:
        member(data)["org"] = "Bank A Holdings"
        connector(data, "mailbox")["members"].append(
            {"match": "*@bank-c.example", "org": "Bank C", "scope": {"share_with": ["finance-isac"]}}
        )

    # When
    lines = diff_configs(config(), config(edit)).render()

    # Then
    assert "~ member *@bank-a.example of mailbox: org: Bank A -> Bank A Holdings" in lines
    assert "+ member *@bank-c.example of mailbox" in lines


# --- schedules ---------------------------------------------------------------------------------------


def test_polling_connectors_get_schedules_with_type_defaults() -> None:
    # Given a feed without `every`, a TAXII pull without `every`, a mailbox without a source
    # When
    schedules = schedules_of(config())

    # Then
    assert schedules == {"fin-taxii": Schedule("fin-taxii", "5m"), "advisories": Schedule("advisories", "15m")}
    assert schedules["advisories"].expression == "rate(15 minutes)"


@pytest.mark.parametrize(
    ("every", "expression"),
    [("1m", "rate(1 minute)"), ("90s", "rate(2 minutes)"), ("2h", "rate(2 hours)"), ("1d", "rate(1 day)")],
)
def test_schedule_expression(every: str, expression: str) -> None:
    assert Schedule("x", every).expression == expression


def test_schedules_added_changed_removed_in_the_diff() -> None:
    # Given TAXII turns push-only, the feed slows down, the mailbox gets a folder to poll
    def edit(data: dict[str, Any]) -> None:
        connector(data, "fin-taxii")["direction"] = "push"
        connector(data, "advisories")["every"] = "1h"
        connector(data, "mailbox")["source"] = "/var/mail/renkei"

    # When
    diff = diff_configs(config(), config(edit))

    # Then
    lines = diff.render()
    assert "+ schedule mailbox: every 15m (rate(15 minutes))" in lines
    assert "~ schedule advisories: every 15m -> 1h (rate(1 hour))" in lines
    assert "- schedule fin-taxii" in lines


def test_same_interval_written_differently_is_no_schedule_change() -> None:
    def edit(data: dict[str, Any]) -> None:
        connector(data, "advisories")["every"] = "900s"

    assert diff_configs(config(), config(edit)).names("schedule", "changed") == []


# --- widenings ---------------------------------------------------------------------------------------


def test_narrowing_records_no_widening() -> None:
    # Given fsa dropped from share_with, regulators excluded, TLP stricter
    def edit(data: dict[str, Any]) -> None:
        connector(data, "fin-taxii")["scope"] = {"share_with": ["power-isac"], "exclude": [{"kind": "regulator"}]}
        connector(data, "fin-taxii")["tlp"] = "AMBER"

    # When
    diff = diff_configs(config(), config(edit))

    # Then
    assert not diff.is_empty
    assert diff.widenings == ()


def test_wider_scope_and_weaker_tlp_are_widenings() -> None:
    # Given
    def edit(data: dict[str, Any]) -> None:
        connector(data, "fin-taxii")["scope"]["share_with"].append("bank-b")
        connector(data, "advisories")["tlp"] = "CLEAR"  # unchanged
        member(data)["tlp"] = "GREEN"
        member(data)["scope"]["exclude"] = []

    # When
    diff = diff_configs(config(), config(edit))

    # Then
    by_sender = {w.sender: w.changes for w in diff.widenings}
    assert by_sender == {
        "connector fin-taxii": ("scope.share_with: +bank-b",),
        "member *@bank-a.example of mailbox": ("scope.exclude: -{kind: regulator}", "TLP AMBER -> GREEN"),
    }
    assert "! widens connector fin-taxii: scope.share_with: +bank-b" in diff.render()
    assert all(not line.startswith("!") for line in diff.render(include_widenings=False))


def test_mailbox_change_widens_members_that_inherit_it() -> None:
    # Given the member has no scope of its own: it inherits the mailbox's
    def inherit(data: dict[str, Any]) -> None:
        del member(data)["scope"]

    def widen(data: dict[str, Any]) -> None:
        inherit(data)
        connector(data, "mailbox")["scope"] = {"share_with": "all"}
        member(data)["tlp"] = "GREEN"

    # When
    diff = diff_configs(config(inherit), config(widen))

    # Then
    assert [w.sender for w in diff.widenings] == ["member *@bank-a.example of mailbox"]
    assert diff.widenings[0].changes[0] == "scope.share_with: [finance-isac] -> all"


def test_reclassifying_an_excluded_community_widens_the_senders_that_excluded_its_kind() -> None:
    # Given the member excludes regulators and shares with all; fsa stops being a regulator
    def before(data: dict[str, Any]) -> None:
        member(data)["tlp"] = "GREEN"
        member(data)["scope"]["share_with"] = "all"

    def after(data: dict[str, Any]) -> None:
        before(data)
        data["communities"][3]["kind"] = "isac"

    # When
    diff = diff_configs(config(before), config(after))

    # Then: the member's own config did not change, yet it now reaches fsa
    assert "~ community fsa: kind: regulator -> isac" in diff.render()
    assert [(w.sender, w.changes) for w in diff.widenings] == [
        ("member *@bank-a.example of mailbox", ("reaches fsa: its kind changed regulator -> isac",))
    ]


def test_dropping_approval_is_a_widening() -> None:
    def edit(data: dict[str, Any]) -> None:
        member(data)["approval"] = "none"

    diff = diff_configs(config(), config(edit))

    assert diff.widenings[0].changes == ("approval: required -> none",)


def test_history_shows_a_sender_every_change_that_widened_it() -> None:
    # Given three changes, the second of which widens fin-taxii
    store = InMemoryRegistryStore()
    wider = config(lambda d: connector(d, "fin-taxii")["scope"]["share_with"].append("bank-b"))
    narrower = config(lambda d: connector(d, "fin-taxii").update(tlp="AMBER"))
    held: HubConfig | None = None
    version: int | None = None
    for who, new in (("alice", config()), ("bob", wider), ("carol", narrower)):
        diff = diff_configs(held, new)
        version = store.apply(new, version, change_record(diff, new, who, "2026-11-23T00:00:00Z"))
        held = new

    # When
    widened = widenings_of(store.history(), "fin-taxii")

    # Then
    assert [(r.version, r.applied_by) for r in widened] == [(2, "bob")]
    assert widenings_of(store.history(), "mailbox", "*@BANK-A.example") == []


# --- the stored form and the in-memory store ---------------------------------------------------------


def test_stored_json_round_trips_and_is_canonical() -> None:
    original = config()

    assert config_from_json(config_json(original)) == original
    assert config_sha256(original) == config_sha256(config_from_json(config_json(original)))


def test_change_record_round_trips() -> None:
    diff = diff_configs(config(), config(lambda d: connector(d, "fin-taxii")["scope"]["share_with"].append("bank-b")))
    record = change_record(diff, config(), "alice", "2026-11-23T00:00:00Z")

    assert ChangeRecord.from_json(record.to_json()) == record


def test_in_memory_store_versions_and_conflicts() -> None:
    # Given
    store = InMemoryRegistryStore()
    record = change_record(diff_configs(None, config()), config(), "alice", "2026-11-23T00:00:00Z")
    assert store.current() is None

    # When
    first = store.apply(config(), None, record)
    second = store.apply(config(), first, record)

    # Then
    assert (first, second) == (1, 2)
    assert [r.version for r in store.history()] == [1, 2]
    with pytest.raises(ConflictError):
        store.apply(config(), first, record)  # someone else applied version 2 meanwhile
    with pytest.raises(ConflictError):
        store.apply(config(), None, record)
    held = store.current()
    assert held is not None and held[0] == 2


# --- the readers' cache ------------------------------------------------------------------------------


class Capture:
    def __init__(self) -> None:
        self.bundles: dict[str, list[dict[str, Any]]] = {}

    def deliver(self, destination: str, bundle: dict[str, Any]) -> None:
        self.bundles.setdefault(destination, []).append(bundle)

    def ids(self, destination: str) -> set[str]:
        return {o["id"] for b in self.bundles.get(destination, []) for o in b["objects"]}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cache_serves_the_held_config_until_its_ttl() -> None:
    # Given a reader with a 60 s cache
    store, clock = InMemoryRegistryStore(), Clock()
    reader = CachedRegistry(store, ttl_seconds=60, clock=clock)
    with pytest.raises(NotOnboarded):
        reader.config()
    record = change_record(diff_configs(None, config()), config(), "alice", "t")
    store.apply(config(), None, record)

    # When / Then: the empty registry was cached, then the config is read once the TTL is over
    clock.now = 59
    assert reader.current() is None
    clock.now = 60
    assert reader.current() == (1, config())
    narrowed = config(lambda d: connector(d, "fin-taxii")["scope"].update(share_with=["power-isac"]))
    store.apply(narrowed, 1, record)
    clock.now = 100
    assert reader.config() == config()
    clock.now = 120
    assert reader.current() == (2, narrowed)


def test_a_narrowed_scope_withholds_the_next_object_once_the_reader_has_it() -> None:
    # Given a hub whose routing comes from the registry through a 5 s cache (as `serve` reads it)
    store, clock = InMemoryRegistryStore(), Clock()
    wide = hub_config()
    store.apply(wide, None, change_record(diff_configs(None, wide), wide, "alice", "t"))
    reader = CachedRegistry(store, ttl_seconds=5, clock=clock)
    state, delivered = InMemoryStateStore(), Capture()

    def ingest(name: str) -> None:
        routing = reader.config()  # one config per input: never a mix of two versions
        pipeline = Pipeline(routing, state, InMemoryBlobStore(), delivered, seal_key=b"s" * 32)
        pipeline.ingest(bundle(indicator(name)), sender_for(routing, "drop"), f"{name}.json")

    ingest("before")
    assert sid("indicator", "before") in delivered.ids("power-isac")

    # When the operator narrows `drop` to finance-isac, and the cache's TTL passes
    narrowed = hub_config({"scope": {"share_with": ["finance-isac"]}})
    store.apply(narrowed, 1, change_record(diff_configs(wide, narrowed), narrowed, "bob", "t"))
    clock.now = 5
    ingest("after")

    # Then the next object is withheld from power-isac and still reaches finance-isac
    assert sid("indicator", "after") not in delivered.ids("power-isac")
    assert sid("indicator", "after") in delivered.ids("finance-isac")
