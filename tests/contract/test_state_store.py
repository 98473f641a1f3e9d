"""One suite, every backend of the state port: in memory, and DynamoDB on moto's server on 127.0.0.1."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.aws.dynamo_state import DynamoStateStore
from connectors.aws.provision import create_table
from gateway.memory import InMemoryStateStore
from gateway.model import Delivery, PendingItem, QuarantineRecord, VersionRecord
from gateway.ports import StateStore
from local.embedded import EmbeddedAws
from schemas.tables import STATE


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAws]:
    with EmbeddedAws() as embedded:
        yield embedded


@pytest.fixture(params=["memory", "dynamodb-transactions", "dynamodb-exclusive-writer"])
def store(request: pytest.FixtureRequest, aws: EmbeddedAws) -> StateStore:
    if request.param == "memory":
        return InMemoryStateStore()
    table = f"state-{secrets.token_hex(4)}"  # a fresh table per test: tests never see each other
    create_table(aws.dynamodb, STATE, table)
    return DynamoStateStore(table, aws.dynamodb, exclusive_writer=request.param.endswith("exclusive-writer"))


def record(object_id: str, version: str, **extra: Any) -> VersionRecord:
    values: dict[str, Any] = {
        "object_id": object_id,
        "version": version,
        "content_hash": "h-" + version,
        "tlp": "GREEN",
        "scope": {"share_with": "all", "exclude": []},
        "connector": "drop",
        "sender_org": "Analysts",
        "recorded_at": "2026-11-23T00:00:00.000Z",
        "decisions": {"power-isac": (True, "tlp:green-in-scope")},
        "body": {"type": "indicator", "id": object_id, "x": 1.5},
    }
    values.update(extra)
    return VersionRecord(**values)


V1, V2, V3 = "2026-01-01T00:00:00.000000Z", "2026-01-02T00:00:00.000000Z", "2026-01-03T00:00:00.000000Z"


def test_a_claimed_version_comes_back_as_held_and_a_second_claim_loses(store: StateStore) -> None:
    # Given a claimed version
    assert store.claim_versions([record("indicator--a", V1)]) == []
    # When the same version is claimed again
    lost = store.claim_versions([record("indicator--a", V1, content_hash="other")])
    # Then the held record is returned, unchanged
    assert [(r.object_id, r.version, r.content_hash) for r in lost] == [("indicator--a", V1, "h-" + V1)]
    held = store.versions([("indicator--a", V1)])[("indicator--a", V1)]
    assert held.decisions == {"power-isac": (True, "tlp:green-in-scope")} and held.body == record("x", V1).body | {
        "id": "indicator--a"
    }


def test_latest_only_moves_forward(store: StateStore) -> None:
    store.claim_versions([record("indicator--a", V2)])
    store.claim_versions([record("indicator--a", V1)])  # an older version arriving late
    assert store.latest(["indicator--a", "indicator--unknown"])["indicator--a"].version == V2
    store.claim_versions([record("indicator--a", V3)])
    assert store.latest(["indicator--a"])["indicator--a"].version == V3
    assert sorted(r.version for r in store.history("indicator--a")) == [V1, V2, V3]


def test_content_addressed_versions_always_count_as_newer(store: StateStore) -> None:
    store.claim_versions([record("ipv4-addr--a", "sha256:bbb")])
    store.claim_versions([record("ipv4-addr--a", "sha256:aaa")])
    assert store.latest(["ipv4-addr--a"])["ipv4-addr--a"].version == "sha256:aaa"


def test_update_versions_overwrites_decisions_and_status(store: StateStore) -> None:
    store.claim_versions([record("indicator--a", V1, status="pending")])
    store.update_versions([record("indicator--a", V1, status="routed", decisions={"fsa": (False, "tlp:red")})])
    held = store.versions([("indicator--a", V1)])[("indicator--a", V1)]
    assert (held.status, held.decisions) == ("routed", {"fsa": (False, "tlp:red")})


def test_a_delivery_is_recorded_once_and_the_newest_wins(store: StateStore) -> None:
    first = store.record_deliveries([Delivery("power-isac", "indicator--a", V2)])
    again = store.record_deliveries(
        [Delivery("power-isac", "indicator--a", V2), Delivery("power-isac", "indicator--a", V1)]
    )
    assert len(first) == 1
    assert [(d.version) for d in again] == [V1]  # V2 was already recorded; V1 is new but older
    assert store.delivered([("power-isac", "indicator--a"), ("fsa", "indicator--a")]) == {
        ("power-isac", "indicator--a"): V2
    }


def test_pending_is_taken_by_exactly_one_caller(store: StateStore) -> None:
    item = PendingItem(
        pending_id="pending--1",
        connector="member",
        sender_org="Bank A",
        created="2026-11-23T00:00:00.000Z",
        expires="2026-11-30T00:00:00.000Z",
        objects=[{"type": "indicator", "id": "indicator--a"}],
        input_name="mail.eml",
        hops=("hub-b",),
    )
    store.put_pending(item)
    assert [p.pending_id for p in store.pending()] == ["pending--1"]
    winners: list[PendingItem | None] = []
    threads = [threading.Thread(target=lambda: winners.append(store.take_pending("pending--1"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = [w for w in winners if w is not None]
    assert len(taken) == 1 and taken[0] == item
    assert store.pending() == []


def test_seals_cursors_and_quarantine(store: StateStore) -> None:
    store.put_seal("anon-1", b"\x00sealed")
    store.put_seal("anon-1", b"replaced?")
    assert store.get_seal("anon-1") == b"\x00sealed" and store.get_seal("anon-2") is None
    store.put_cursor("feed", {"etag": "x", "n": 3})
    assert store.get_cursor("feed") == {"etag": "x", "n": 3} and store.get_cursor("other") is None
    q = QuarantineRecord(
        "quarantine--1", "json:invalid", "not JSON", "drop", "x.json", "s3://b/k", "2026-11-23T00:00:00.000Z"
    )
    store.add_quarantine(q)
    assert store.quarantined() == [q]


def test_batches_larger_than_one_call(store: StateStore) -> None:
    records = [record(f"indicator--{i:04d}", V1) for i in range(230)]
    assert store.claim_versions(records) == []
    assert len(store.latest([r.object_id for r in records])) == 230
    assert len(store.claim_versions(records[:120])) == 120
    deliveries = [Delivery("power-isac", r.object_id, V1) for r in records]
    assert len(store.record_deliveries(deliveries)) == 230
    assert len(store.delivered([("power-isac", r.object_id) for r in records])) == 230


def test_concurrent_claims_have_exactly_one_winner_per_version(store: StateStore) -> None:
    records = [record(f"indicator--{i:03d}", V1) for i in range(40)]
    losses: list[int] = []

    def claim() -> None:
        losses.append(len(store.claim_versions(records)))

    threads = [threading.Thread(target=claim) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # every version was won once: the other two claims lost all of them
    assert sum(losses) == 2 * len(records)
