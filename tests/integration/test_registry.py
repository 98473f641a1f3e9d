"""The registry on DynamoDB and the poll schedules on EventBridge Scheduler, against moto's server on 127.0.0.1."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from connectors.aws.registry import DynamoRegistryStore, history_key
from connectors.aws.schedules import SchedulerSync
from gateway.errors import ConflictError
from gateway.onboarding import CachedRegistry, Schedule, change_record, diff_configs
from schemas.config import HubConfig
from schemas.tables import REGISTRY

pytestmark = pytest.mark.integration

REGION = "us-east-1"
POLLER = "arn:aws:lambda:us-east-1:123456789012:function:renkei-poller"
ROLE = "arn:aws:iam::123456789012:role/renkei-scheduler"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def client(endpoint: str, service: str) -> Any:
    # Explicit dummy credentials: never the developer's own.
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def store(endpoint: str) -> DynamoRegistryStore:
    dynamodb = client(endpoint, "dynamodb")
    name = REGISTRY.physical_name(f"test-{uuid.uuid4().hex[:8]}")
    dynamodb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": REGISTRY.partition_key, "KeyType": "HASH"},
            {"AttributeName": REGISTRY.sort_key, "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": REGISTRY.partition_key, "AttributeType": "S"},
            {"AttributeName": REGISTRY.sort_key, "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return DynamoRegistryStore(name, dynamodb)


def config(share_with: list[str] | str = "all", name: str = "Hub A") -> HubConfig:
    return HubConfig.model_validate(
        {
            "hub": {"id": "hub-a", "name": name},
            "communities": [
                {"id": "finance-isac", "kind": "isac", "deliver": [{"pull": {}}]},
                {"id": "power-isac", "kind": "isac", "deliver": [{"pull": {}}]},
            ],
            "connectors": [
                {
                    "id": "advisories",
                    "type": "feed",
                    "source": "https://cert.example/rss",
                    "sender": {"org": "CERT", "community": "finance-isac"},
                    "tlp": "GREEN",
                    "scope": {"share_with": share_with},
                }
            ],
        }
    )


def apply(store: DynamoRegistryStore, new: HubConfig, who: str = "alice") -> int:
    held = store.current()
    diff = diff_configs(held[1] if held else None, new)
    return store.apply(new, held[0] if held else None, change_record(diff, new, who, "2026-11-23T00:00:00Z"))


# --- the registry ------------------------------------------------------------------------------------


def test_empty_registry_has_no_config_and_no_history(store: DynamoRegistryStore) -> None:
    assert store.current() is None
    assert store.history() == []


def test_apply_twice_keeps_the_latest_and_the_history(store: DynamoRegistryStore) -> None:
    # Given / When
    first = apply(store, config(), "alice")
    second = apply(store, config(share_with=["power-isac"]), "bob")

    # Then
    assert (first, second) == (1, 2)
    assert store.current() == (2, config(share_with=["power-isac"]))
    history = store.history()
    assert [(r.version, r.applied_by) for r in history] == [(1, "alice"), (2, "bob")]
    assert "~ connector advisories: scope.share_with: all -> [power-isac]" in history[1].lines
    assert history[1].widenings == ()


def test_a_conflicting_apply_changes_nothing(store: DynamoRegistryStore) -> None:
    # Given two operators read version 1
    apply(store, config())
    record = change_record(diff_configs(config(), config(name="B")), config(name="B"), "bob", "t")
    store.apply(config(name="B"), 1, record)

    # When the second one applies against version 1 too
    with pytest.raises(ConflictError):
        store.apply(
            config(name="C"), 1, change_record(diff_configs(config(), config(name="C")), config(), "carol", "t")
        )
    with pytest.raises(ConflictError):
        store.apply(config(name="C"), None, record)

    # Then neither the config nor the history moved: the transaction wrote nothing
    assert store.current() == (2, config(name="B"))
    assert [r.applied_by for r in store.history()] == ["alice", "bob"]


def test_widening_is_recorded_with_who_made_it(store: DynamoRegistryStore) -> None:
    apply(store, config(share_with=["power-isac"]), "alice")
    apply(store, config(share_with="all"), "mallory")

    widened = [r for r in store.history() if r.widenings]

    assert [(r.applied_by, w.sender) for r in widened for w in r.widenings] == [("mallory", "connector advisories")]


def test_history_pages_in_version_order(store: DynamoRegistryStore) -> None:
    # Given more changes than the ten that fit before the padding would matter
    for number in range(12):
        apply(store, config(name=f"Hub {number}"))

    assert [r.version for r in store.history()] == list(range(1, 13))
    assert history_key(12) > history_key(9)


def test_a_narrowed_scope_reaches_a_cached_reader_after_its_ttl(store: DynamoRegistryStore) -> None:
    # Given a reader with a 60 s cache that has read the wide scope
    now = [0.0]
    reader = CachedRegistry(store, ttl_seconds=60, clock=lambda: now[0])
    apply(store, config(share_with="all"))
    assert reader.config().connectors[0].scope == config().connectors[0].scope

    # When the scope is narrowed
    apply(store, config(share_with=["power-isac"]))

    # Then the reader keeps the version it holds until the TTL, then has the narrowed one
    now[0] = 30
    held = reader.current()
    assert held is not None and held[0] == 1
    now[0] = 60
    held = reader.current()
    assert held is not None and held[0] == 2
    scope = held[1].connectors[0].scope
    assert scope is not None and scope.share_with == ["power-isac"]


# --- schedules ---------------------------------------------------------------------------------------


def test_scheduler_creates_updates_and_deletes_one_schedule_per_connector(endpoint: str) -> None:
    # Given
    scheduler = client(endpoint, "scheduler")
    group = f"g-{uuid.uuid4().hex[:8]}"
    scheduler.create_schedule_group(Name=group)
    sync = SchedulerSync(scheduler, group, POLLER, ROLE)

    # When / Then: created
    done = sync.sync([Schedule("advisories", "15m"), Schedule("fin-taxii", "5m")])
    assert [(a.action, a.name) for a in done] == [("created", "renkei-advisories"), ("created", "renkei-fin-taxii")]
    held = scheduler.get_schedule(Name="renkei-advisories", GroupName=group)
    assert held["ScheduleExpression"] == "rate(15 minutes)"
    assert held["Target"]["Arn"] == POLLER and held["Target"]["RoleArn"] == ROLE
    assert held["Target"]["Input"] == '{"connector":"advisories"}'

    # When / Then: the same again does nothing
    assert sync.sync([Schedule("advisories", "15m"), Schedule("fin-taxii", "5m")]) == []

    # When / Then: changed and removed
    done = sync.sync([Schedule("advisories", "1h")])
    assert [(a.action, a.name) for a in done] == [("updated", "renkei-advisories"), ("deleted", "renkei-fin-taxii")]
    assert scheduler.get_schedule(Name="renkei-advisories", GroupName=group)["ScheduleExpression"] == "rate(1 hour)"
    names = [s["Name"] for s in scheduler.list_schedules(GroupName=group)["Schedules"]]
    assert names == ["renkei-advisories"]


def test_scheduler_leaves_other_targets_alone(endpoint: str) -> None:
    # Given a schedule of someone else in the same group, under our prefix
    scheduler = client(endpoint, "scheduler")
    group = f"g-{uuid.uuid4().hex[:8]}"
    scheduler.create_schedule_group(Name=group)
    scheduler.create_schedule(
        Name="renkei-other",
        GroupName=group,
        ScheduleExpression="rate(1 day)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": "arn:aws:lambda:us-east-1:123456789012:function:other", "RoleArn": ROLE},
    )

    # When
    SchedulerSync(scheduler, group, POLLER, ROLE).sync([])

    # Then
    assert [s["Name"] for s in scheduler.list_schedules(GroupName=group)["Schedules"]] == ["renkei-other"]


def test_long_connector_ids_get_unique_names_within_the_limit() -> None:
    sync = SchedulerSync(None, "default", POLLER, ROLE)

    a, b = sync.name("x" * 100 + "a"), sync.name("x" * 100 + "b")

    assert len(a) <= 64 and len(b) <= 64 and a != b
