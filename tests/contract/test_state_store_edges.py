"""The state port's edges, on every backend: several versions in one call, sizes past DynamoDB's item and
batch limits, isolation of stored records, races between workers, and how SDK errors surface."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from connectors.aws.dynamo_state import DynamoStateStore
from connectors.aws.provision import create_table
from gateway.errors import PermanentError, RetryableError
from gateway.memory import InMemoryStateStore
from gateway.model import Delivery, PendingItem, QuarantineRecord, VersionRecord
from gateway.ports import StateStore
from local.embedded import EmbeddedAws
from schemas.tables import STATE

V1, V2, V3 = "2026-01-01T00:00:00.000000Z", "2026-01-02T00:00:00.000000Z", "2026-01-03T00:00:00.000000Z"
BACKENDS = ["memory", "dynamodb-transactions", "dynamodb-exclusive-writer"]

Factory = Callable[[], StateStore]


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAws]:
    with EmbeddedAws() as embedded:
        yield embedded


@pytest.fixture(params=BACKENDS)
def stores(request: pytest.FixtureRequest, aws: EmbeddedAws) -> Iterator[Factory]:
    """Makes stores over one fresh state, as separate workers would hold them."""
    if request.param == "memory":
        shared = InMemoryStateStore()
        yield lambda: shared
        return
    table = f"edges-{secrets.token_hex(4)}"
    create_table(aws.dynamodb, STATE, table)
    if request.param == "dynamodb-exclusive-writer":
        # the embedded default: one store, shared by every worker thread of the process
        exclusive = DynamoStateStore(table, aws.dynamodb, exclusive_writer=True)
        yield lambda: exclusive
    else:
        yield lambda: DynamoStateStore(table, aws.dynamodb)
    aws.dynamodb.delete_table(TableName=table)


@pytest.fixture
def store(stores: Factory) -> StateStore:
    return stores()


def record(object_id: str, version: str, **extra: Any) -> VersionRecord:
    values: dict[str, Any] = {
        "object_id": object_id,
        "version": version,
        "content_hash": "h-" + version,
        "tlp": "AMBER",
        "scope": {"share_with": ["bank-b"], "exclude": [{"kind": "regulator"}]},
        "connector": "drop",
        "sender_org": "Analysts",
        "recorded_at": version,
        "decisions": {"bank-b": (True, "tlp:amber:named")},
        "body": {"type": "indicator", "id": object_id, "modified": version, "confidence": 85, "x_score": 0.25},
    }
    values.update(extra)
    return VersionRecord(**values)


def pending_item(pending_id: str, objects: list[dict[str, Any]], created: str = V1) -> PendingItem:
    return PendingItem(pending_id, "member", "Bank A", created, V3, objects, "mail.eml", ("hub-b",), "t" * 64)


def run_threads(target: Callable[[int], None], count: int) -> None:
    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


# --- versions ----------------------------------------------------------------------------------------


def test_several_versions_of_one_object_in_one_claim(store: StateStore) -> None:
    # Given an input that carries three versions of one object, out of order
    claimed = [record("indicator--a", V1), record("indicator--a", V3), record("indicator--a", V2)]
    # When they are claimed in one call
    lost = store.claim_versions(claimed)
    # Then all three are held, and latest is the newest
    assert lost == []
    assert store.latest(["indicator--a"]) == {"indicator--a": claimed[1]}
    assert [r.version for r in store.history("indicator--a")] == [V1, V2, V3]


def test_the_same_version_twice_in_one_claim_is_won_by_the_first(store: StateStore) -> None:
    first, second = record("indicator--a", V1), record("indicator--a", V1, content_hash="other")
    lost = store.claim_versions([first, second])
    assert lost == [first]  # the held record, which is the first one
    assert store.versions([("indicator--a", V1)]) == {("indicator--a", V1): first}


def test_a_resent_content_addressed_version_does_not_move_latest_back(store: StateStore) -> None:
    store.claim_versions([record("file--a", "sha256:aaa")])
    store.claim_versions([record("file--a", "sha256:bbb")])
    assert [r.version for r in store.claim_versions([record("file--a", "sha256:aaa")])] == ["sha256:aaa"]
    assert store.latest(["file--a"])["file--a"].version == "sha256:bbb"


def test_stored_records_are_copies_both_ways(store: StateStore) -> None:
    # Given a claimed record that the caller keeps mutating
    mine = record("indicator--a", V1)
    store.claim_versions([mine])
    mine.scope["share_with"].append("everyone")
    mine.decisions["fsa"] = (True, "oops")
    assert mine.body is not None
    mine.body["confidence"] = 0
    # When a caller mutates what it read
    read = store.versions([("indicator--a", V1)])[("indicator--a", V1)]
    assert read.body is not None
    read.body["confidence"] = 1
    # Then the store still holds what was claimed
    assert store.versions([("indicator--a", V1)])[("indicator--a", V1)] == record("indicator--a", V1)


def test_a_large_compressible_body_round_trips(store: StateStore) -> None:
    body = {"type": "report", "id": "report--a", "description": "phishing campaign. " * 40_000}  # 760 KB
    store.claim_versions([record("report--a", V1, body=body)])
    assert store.latest(["report--a"])["report--a"].body == body


def test_batches_past_every_call_limit(store: StateStore) -> None:
    # Given more ids than one BatchGetItem (100) and more items than one BatchWriteItem (25) takes
    records = [record(f"indicator--{i:04d}", V1) for i in range(130)]
    # When they are claimed, read, and delivered
    assert store.claim_versions(records) == []
    assert store.latest(r.object_id for r in records) == {r.object_id: r for r in records}
    assert len(store.versions((r.object_id, V1) for r in records)) == 130
    deliveries = [Delivery("bank-b", r.object_id, V1) for r in records]
    assert store.record_deliveries(deliveries) == deliveries
    # Then a second claim of some loses each of them, and every delivery is known
    assert len(store.claim_versions(records[:30])) == 30
    assert store.delivered(("bank-b", r.object_id) for r in records) == {("bank-b", r.object_id): V1 for r in records}


def test_concurrent_workers_win_each_version_once_and_latest_ends_newest(stores: Factory) -> None:
    # Given four workers claiming overlapping versions of the same objects, in different orders
    versions = [V1, V2, V3]
    batch = [record(f"indicator--{i:02d}", v) for i in range(20) for v in versions]
    batches = [batch, batch[::-1], batch, batch[::-1]]
    lost: list[list[tuple[str, str]]] = [[] for _ in batches]

    def work(n: int) -> None:
        lost[n] = [(r.object_id, r.version) for r in stores().claim_versions(batches[n])]

    # When they all claim at once
    run_threads(work, len(batches))
    # Then each of the 60 versions was won by exactly one worker, and latest is V3 everywhere
    assert sum(len(x) for x in lost) == 3 * 60
    assert all(sum(key in x for x in lost) == 3 for key in [(r.object_id, r.version) for r in batch])
    latest = stores().latest(f"indicator--{i:02d}" for i in range(20))
    assert {r.version for r in latest.values()} == {V3}


# --- deliveries --------------------------------------------------------------------------------------


def test_two_versions_delivered_in_one_call(store: StateStore) -> None:
    newer, older = Delivery("bank-b", "indicator--a", V2), Delivery("bank-b", "indicator--a", V1)
    assert store.record_deliveries([newer, older, newer]) == [newer, older]
    assert store.delivered([("bank-b", "indicator--a")]) == {("bank-b", "indicator--a"): V2}


# --- pending, quarantine -----------------------------------------------------------------------------


def test_a_pending_input_larger_than_an_item_round_trips_and_is_taken_once(stores: Factory) -> None:
    # Given an input of 4,000 indicators waiting for approval: over 400 KB even compressed
    objects = [{"type": "indicator", "id": f"indicator--{n}", "x": secrets.token_hex(100)} for n in range(4000)]
    store = stores()
    store.put_pending(pending_item("pending--big", objects))
    store.put_pending(pending_item("pending--small", objects[:1], created=V2))
    # When it is listed and then taken by two workers at once
    assert [(p.pending_id, len(p.objects)) for p in store.pending()] == [("pending--big", 4000), ("pending--small", 1)]
    taken: list[PendingItem | None] = [None, None]

    def take(n: int) -> None:
        taken[n] = stores().take_pending("pending--big")

    run_threads(take, 2)
    # Then exactly one got all of it, and it is gone
    winners = [t for t in taken if t is not None]
    assert len(winners) == 1 and winners[0] == pending_item("pending--big", objects)
    assert [p.pending_id for p in store.pending()] == ["pending--small"]
    assert store.take_pending("pending--big") is None and store.take_pending("pending--unknown") is None


def test_quarantine_lists_oldest_first(store: StateStore) -> None:
    later = QuarantineRecord("quarantine--2", "stix:invalid", "d", "drop", "b.json", "s3://r/b", V2)
    earlier = QuarantineRecord("quarantine--1", "json:invalid", "d", "drop", "a.json", "s3://r/a", V1, "indicator--a")
    store.add_quarantine(later)
    store.add_quarantine(earlier)
    assert store.quarantined() == [earlier, later]


# --- DynamoDB only: the slow path and SDK errors --------------------------------------------------


class WithoutReasons:
    """A client whose cancelled transactions say nothing about which action failed."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def transact_write_items(self, **kwargs: Any) -> Any:
        try:
            return self._client.transact_write_items(**kwargs)
        except ClientError as exc:
            exc.response.pop("CancellationReasons", None)
            raise


def test_without_cancellation_reasons_each_claim_is_decided_alone(aws: EmbeddedAws) -> None:
    table = f"edges-{secrets.token_hex(4)}"
    create_table(aws.dynamodb, STATE, table)
    store = DynamoStateStore(table, WithoutReasons(aws.dynamodb))
    store.claim_versions([record("indicator--a", V2), record("indicator--b", V1)])
    lost = store.claim_versions([record("indicator--a", V1), record("indicator--a", V2), record("indicator--b", V2)])
    assert [(r.object_id, r.version) for r in lost] == [("indicator--a", V2)]
    assert {i: r.version for i, r in store.latest(["indicator--a", "indicator--b"]).items()} == {
        "indicator--a": V2,
        "indicator--b": V2,
    }
    aws.dynamodb.delete_table(TableName=table)


class Failing:
    def __init__(self, error: Exception) -> None:
        self._error = error

    def __getattr__(self, name: str) -> Any:
        def fail(**_: Any) -> Any:
            raise self._error

        return fail


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (client_error("ProvisionedThroughputExceededException", 400), RetryableError),
        (client_error("InternalServerError", 500), RetryableError),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), RetryableError),
        (client_error("ValidationException", 400), PermanentError),
        (client_error("ResourceNotFoundException", 400), PermanentError),
    ],
)
def test_sdk_errors_are_translated_where_they_happen(error: Exception, expected: type[Exception]) -> None:
    store = DynamoStateStore("state", Failing(error))
    with pytest.raises(expected) as raised:
        store.claim_versions([record("indicator--a", V1)])
    assert raised.value.__cause__ is error
    with pytest.raises(expected):
        store.latest(["indicator--a"])
