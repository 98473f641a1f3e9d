"""Nothing lost under faults (issue 5): the real router and deliverer on moto's SQS, S3 and DynamoDB, delivering
to real peer inboxes (the `peer` channel, signed, POSTed to HTTP servers on 127.0.0.1), while a destination is
down, DynamoDB throttles, SQS refuses or repeats a message, or a worker dies halfway.

After each fault: every run summary reconciles (`objects = delivered + withheld + pending + quarantined +
duplicate`), the state records a delivery of every object to every destination, and each destination received
each object exactly once.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import botocore.retries.standard
import orjson
import pytest

from connectors.peer.signing import new_keypair
from functions import channels, localrun, wiring
from functions import runs as runs_module
from functions.deliver import handler as deliver
from functions.observability import count as count_metric
from functions.outbox import SqsOutbox
from functions.router import handler as router
from functions.runs import run_intakes
from gateway.pipeline import COUNT_KEYS, RunResult
from schemas.config import HubConfig, PeerChannel
from tests.functions.faults import PeerInboxes, Refuse, WorkerDied
from tests.functions.test_fn_handlers import Aws, aws  # noqa: F401 - `aws`: moto's server, a module fixture
from tests.unit.stixdata import bundle, indicator

pytestmark = pytest.mark.integration

SIGNING_ENV = "RENKEI_TEST_FAULTS_SIGNING_KEY"
PEER_KEY_ENV = "RENKEI_TEST_FAULTS_PEER_KEY"
DESTINATIONS = ("d1", "d2", "d3", "d4", "d5")


def fault_config(inbox_url: str) -> HubConfig:
    """Five peer hubs, each with its own inbox; one connector sharing GREEN with all."""
    return HubConfig.model_validate(
        {
            "hub": {"id": "fault-hub", "signing_key_env": SIGNING_ENV},
            "communities": [
                {
                    "id": d,
                    "kind": "peer-hub",
                    "deliver": [{"peer": {"url": f"{inbox_url}/{d}", "public_key_env": PEER_KEY_ENV}}],
                }
                for d in DESTINATIONS
            ],
            "connectors": [
                {
                    "id": "inbox",
                    "type": "stix",
                    "sender": {"org": "Org A"},
                    "tlp": "GREEN",
                    "scope": {"share_with": "all"},
                }
            ],
        }
    )


@dataclass(eq=False)
class QueuedWiring(wiring.Wiring):
    """The wiring, and this test's queues by name (envelopes, deliveries and their -dlq)."""

    queues: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def inboxes(monkeypatch: pytest.MonkeyPatch) -> Iterator[PeerInboxes]:
    private, public = new_keypair()
    monkeypatch.setenv(SIGNING_ENV, private.decode())
    monkeypatch.setenv(PEER_KEY_ENV, public.decode())
    with PeerInboxes(public) as boxes:
        yield boxes


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The summary of every run the router completed (a run that raised has none)."""
    summaries: list[dict[str, Any]] = []
    real = run_intakes

    def recorded(*args: Any, **kwargs: Any) -> RunResult:
        result = real(*args, **kwargs)
        summaries.append(result.summary())
        return result

    monkeypatch.setattr(router, "run_intakes", recorded)
    return summaries


@pytest.fixture
def delivered_metric(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The deliverer's `ObjectsDelivered` metric, per destination."""
    counted: Counter[str] = Counter()
    real = count_metric

    def count(name: str, value: float, dimension: tuple[str, str] | None = None) -> None:
        if name == "ObjectsDelivered" and dimension is not None:
            counted[dimension[1]] += int(value)
        real(name, value, dimension)

    monkeypatch.setattr(deliver, "count", count)
    return counted


@pytest.fixture
def hub(aws: Aws, inboxes: PeerInboxes, monkeypatch: pytest.MonkeyPatch) -> Iterator[wiring.Wiring]:  # noqa: F811
    """The wiring of this test: queues as the stack makes them (dead-lettering after 3 tries, visible again at once)."""
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    # botocore's backoff between its own retries (up to seconds): the retries still happen, without the wait
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    sqs = aws.client("sqs")
    queues = localrun.create_queues(sqs, f"faults-{uuid.uuid4().hex[:8]}", max_receive_count=3, visibility_timeout=0)
    config = fault_config(inboxes.url)
    settings = aws.settings(queues)
    w = QueuedWiring(settings, session=aws.session, config_source=lambda: (config, "faults:1"), seal_key=b"k" * 32)
    w.queues = queues
    wiring.use(w)
    try:
        yield w
    finally:
        wiring.use(None)
        for url in queues.values():
            sqs.delete_queue(QueueUrl=url)


# --- driving the handlers ---------------------------------------------------------------------------------


def queues(w: wiring.Wiring) -> dict[str, str]:
    assert isinstance(w, QueuedWiring)
    return w.queues


def objects(n: int = 2) -> list[dict[str, Any]]:
    """Indicators no other test used (the state table is shared by the module, and dedupe remembers)."""
    return [indicator(f"fault-{uuid.uuid4().hex[:8]}") for _ in range(n)]


def envelope(w: wiring.Wiring, content: list[dict[str, Any]]) -> str:
    """The envelope of a peer inbox or TAXII push: the raw bundle stored in S3 first, then queued to the router."""
    assert w.blobs is not None
    ref = w.blobs.put(f"raw/inbox/{uuid.uuid4().hex}.json", bundle(*content))
    body = orjson.dumps({"connector": "inbox", "raw_ref": ref, "name": "peer inbox"}).decode()
    w.sqs.send_message(QueueUrl=queues(w)["envelopes"], MessageBody=body)
    return body


def drain(w: wiring.Wiring, queue: str, handler: localrun.Handler, rounds: int = 30) -> list[tuple[int, int]]:
    """Run the worker on `queue` until it is empty, as `gateway serve` does: [(records, failed), ...] per batch."""
    seen: list[tuple[int, int]] = []
    for _ in range(rounds):
        got = localrun.drain_once(w.sqs, queues(w)[queue], handler, wait_seconds=0)
        if got == (0, 0):
            return seen
        seen.append(got)
    raise AssertionError(f"{queue} still not empty after {rounds} batches: {seen}")


def bodies(w: wiring.Wiring, queue: str) -> list[str]:
    """Take every message off `queue` (they stay hidden for a minute)."""
    found: list[str] = []
    while True:
        batch = w.sqs.receive_message(QueueUrl=queues(w)[queue], MaxNumberOfMessages=10, VisibilityTimeout=60)
        if not batch.get("Messages"):
            return found
        found += [m["Body"] for m in batch["Messages"]]


def event(records: list[str]) -> dict[str, Any]:
    """An SQS event whose records carry these bodies (the same body twice: SQS delivered the message twice)."""
    messages = [{"MessageId": f"msg-{n}", "ReceiptHandle": f"handle-{n}", "Body": b} for n, b in enumerate(records)]
    return localrun.sqs_event(messages, f"arn:aws:sqs:{localrun.REGION}:{localrun.ACCOUNT}:faults")


# --- what must hold after every fault -------------------------------------------------------------------


def reconciles(summary: dict[str, Any]) -> bool:
    return bool(summary["objects"] == sum(summary[k] for k in COUNT_KEYS if k != "objects"))


def assert_nothing_lost(w: wiring.Wiring, inboxes: PeerInboxes, content: list[dict[str, Any]]) -> None:
    """Each destination received each object exactly once, and the state holds a delivery of each."""
    expected = {(d, o["id"]): 1 for d in DESTINATIONS for o in content}
    assert dict(inboxes.copies()) == expected
    assert w.state is not None
    recorded = w.state.delivered(expected)
    assert set(recorded) == set(expected)


# --- the faults ---------------------------------------------------------------------------------------------


def test_a_destination_down_is_retried_then_dead_lettered_and_a_replay_delivers_exactly_once(
    hub: wiring.Wiring, inboxes: PeerInboxes, runs: list[dict[str, Any]], delivered_metric: Counter[str]
) -> None:
    content = objects(2)
    envelope(hub, content)
    # Given every peer inbox answers 503
    inboxes.down = True
    # When the router routes the envelope and the deliverer works through its queue until it is empty
    assert drain(hub, "envelopes", router.lambda_handler) == [(1, 0)]
    batches = drain(hub, "deliveries", deliver.lambda_handler)
    # Then each task was tried three times (maxReceiveCount), each time failed, and now waits in the DLQ
    assert sum(n for n, _ in batches) == sum(f for _, f in batches) == 3 * len(DESTINATIONS)
    assert inboxes.refused == 3 * len(DESTINATIONS) and inboxes.received == []
    dead = bodies(hub, "deliveries-dlq")
    assert sorted(orjson.loads(b)["destination"] for b in dead) == list(DESTINATIONS)
    # When the inboxes are back and the dead letters are replayed (one of them twice, by mistake)
    inboxes.down = False
    for body in [*dead, dead[0]]:
        hub.sqs.send_message(QueueUrl=queues(hub)["deliveries"], MessageBody=body)
    batches = drain(hub, "deliveries", deliver.lambda_handler)
    # Then all are done, each destination received each object exactly once, and nothing is left anywhere
    assert sum(n for n, _ in batches) == len(DESTINATIONS) + 1 and sum(f for _, f in batches) == 0
    assert_nothing_lost(hub, inboxes, content)
    assert bodies(hub, "deliveries-dlq") == [] and bodies(hub, "envelopes-dlq") == []
    # and the counts: one routing run, everything delivered; the deliverer counted each object once per destination
    assert [(s["objects"], s["delivered"]) for s in runs] == [(2, 2)] and all(map(reconciles, runs))
    assert delivered_metric == dict.fromkeys(DESTINATIONS, 2)


def test_dynamodb_throttling_fails_the_record_and_its_redelivery_completes_without_counting_twice(
    hub: wiring.Wiring, inboxes: PeerInboxes, runs: list[dict[str, Any]], delivered_metric: Counter[str]
) -> None:
    content = objects(2)
    body = envelope(hub, content)
    bodies(hub, "envelopes")  # driven by hand below
    # Given DynamoDB throttles the router's second transaction, past botocore's 5 attempts: the versions are
    # claimed and d1's task is queued, then recording that delivery fails
    throttled = Refuse(
        hub.dynamodb, {"TransactWriteItems"}, times=5, code="ProvisionedThroughputExceededException", after=1
    )
    # When the router gets the envelope
    first = router.lambda_handler(event([body]), localrun.LocalContext())
    # Then the record is reported failed (SQS returns it), after botocore retried the throttled call itself
    assert first == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert throttled.refused["TransactWriteItems"] == 5 and runs == []
    # When SQS redelivers it
    assert router.lambda_handler(event([body]), localrun.LocalContext()) == {"batchItemFailures": []}
    # Then the objects are duplicates of the claimed versions, and the tasks never queued are queued now
    assert [(s["objects"], s["duplicate"], s["delivered"]) for s in runs] == [(2, 2, 0)] and reconciles(runs[0])
    assert runs[0]["deliveries"] == dict.fromkeys(DESTINATIONS, 2)
    tasks = bodies(hub, "deliveries")
    assert Counter(orjson.loads(t)["destination"] for t in tasks) == {"d1": 2, **dict.fromkeys(DESTINATIONS[1:], 1)}
    # Given DynamoDB now throttles the deliverer's first idempotency write (ThrottlingException) past botocore
    throttled = Refuse(hub.dynamodb, {"PutItem"}, times=5, code="ThrottlingException")
    # When the deliverer gets all six tasks in one batch
    answer = deliver.lambda_handler(event(tasks), localrun.LocalContext())
    # Then exactly the first record failed, and its redelivery completes
    assert answer == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert throttled.refused["PutItem"] == 5
    assert deliver.lambda_handler(event([tasks[0]]), localrun.LocalContext()) == {"batchItemFailures": []}
    # and nothing was sent or counted twice, although d1's task was queued twice
    assert_nothing_lost(hub, inboxes, content)
    assert delivered_metric == dict.fromkeys(DESTINATIONS, 2)


def test_sqs_refusing_a_delivery_task_fails_the_envelope_and_its_retry_queues_only_that_task(
    hub: wiring.Wiring, inboxes: PeerInboxes, runs: list[dict[str, Any]]
) -> None:
    content = objects(2)
    body = envelope(hub, content)
    bodies(hub, "envelopes")
    # Given SQS is unavailable (503) for the third task, past botocore's 5 attempts
    refused = Refuse(hub.sqs, {"SendMessage"}, times=5, code="ServiceUnavailable", status=503, after=2)
    # When the router routes the envelope
    answer = router.lambda_handler(event([body]), localrun.LocalContext())
    # Then the run says d3 was not queued, and the envelope is not acknowledged
    assert refused.refused["SendMessage"] == 5
    assert answer == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert runs[0]["undelivered"] == {"d3": 2} and reconciles(runs[0])
    first = bodies(hub, "deliveries")
    assert sorted(orjson.loads(t)["destination"] for t in first) == ["d1", "d2", "d4", "d5"]
    # When it comes back: its objects are duplicates now, and only d3's task is queued
    assert router.lambda_handler(event([body]), localrun.LocalContext()) == {"batchItemFailures": []}
    assert (runs[1]["duplicate"], runs[1]["deliveries"]) == (2, {"d3": 2}) and reconciles(runs[1])
    later = bodies(hub, "deliveries")
    assert [orjson.loads(t)["destination"] for t in later] == ["d3"]
    # and every task, the late one included, delivers once
    assert deliver.lambda_handler(event(first + later), localrun.LocalContext()) == {"batchItemFailures": []}
    assert_nothing_lost(hub, inboxes, content)


def test_sqs_delivering_each_message_twice_sends_each_object_once(
    hub: wiring.Wiring, inboxes: PeerInboxes, runs: list[dict[str, Any]], delivered_metric: Counter[str]
) -> None:
    content = objects(2)
    body = envelope(hub, content)
    bodies(hub, "envelopes")
    # When the router gets the envelope twice in one batch, and once more later
    assert router.lambda_handler(event([body, body]), localrun.LocalContext()) == {"batchItemFailures": []}
    assert router.lambda_handler(event([body]), localrun.LocalContext()) == {"batchItemFailures": []}
    # Then the first run routed, the others found duplicates, and one task per destination was queued
    assert [(s["delivered"], s["duplicate"]) for s in runs] == [(2, 0), (0, 2), (0, 2)] and all(map(reconciles, runs))
    tasks = bodies(hub, "deliveries")
    assert sorted(orjson.loads(t)["destination"] for t in tasks) == list(DESTINATIONS)
    # When the deliverer gets every task twice in one batch, and each once more later
    assert deliver.lambda_handler(event(tasks + tasks), localrun.LocalContext()) == {"batchItemFailures": []}
    assert deliver.lambda_handler(event(tasks), localrun.LocalContext()) == {"batchItemFailures": []}
    # Then each destination received each object once, and counted once
    assert_nothing_lost(hub, inboxes, content)
    assert delivered_metric == dict.fromkeys(DESTINATIONS, 2)


class DyingChannel:
    """The real channel, in a worker that is killed at its `die_at`-th send (before anything goes out)."""

    def __init__(self, inner: Any, calls: list[str], die_at: int) -> None:
        self.inner, self.calls, self.die_at = inner, calls, die_at

    def deliver(self, destination: str, bundle: dict[str, Any]) -> None:
        self.calls.append(destination)
        if len(self.calls) == self.die_at:
            raise WorkerDied(f"killed before sending to {destination}")
        self.inner.deliver(destination, bundle)


def test_a_deliverer_killed_after_three_of_five_destinations_sends_only_the_other_two_on_redelivery(
    hub: wiring.Wiring,
    inboxes: PeerInboxes,
    runs: list[dict[str, Any]],
    delivered_metric: Counter[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    content = objects(2)
    envelope(hub, content)
    assert drain(hub, "envelopes", router.lambda_handler) == [(1, 0)]
    calls: list[str] = []
    real = channels.BUILDERS[PeerChannel]
    monkeypatch.setitem(channels.BUILDERS, PeerChannel, lambda c, ch, w: DyingChannel(real(c, ch, w), calls, 4))
    # When a worker takes the five tasks in one batch and is killed at its fourth send
    url = queues(hub)["deliveries"]
    batch = hub.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    assert len(batch) == len(DESTINATIONS)
    arn = hub.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    # (a Lambda with little time left: a send cut short stays "in progress" only until the invocation would end)
    with pytest.raises(WorkerDied):
        deliver.lambda_handler(localrun.sqs_event(batch, arn), localrun.LocalContext(timeout_seconds=0.5))
    # Then three destinations have it; nothing was acknowledged, so all five tasks come back
    first_three = calls[:3]
    assert sorted(d for d, _ in inboxes.copies()) == sorted(first_three * 2)
    time.sleep(0.6)
    assert drain(hub, "deliveries", deliver.lambda_handler) == [(5, 0)]
    # and the redelivery sent only to the two others
    assert sorted(calls[4:]) == sorted(set(DESTINATIONS) - set(first_three))
    assert_nothing_lost(hub, inboxes, content)
    assert delivered_metric == dict.fromkeys(DESTINATIONS, 2)
    assert [s["delivered"] for s in runs] == [2] and all(map(reconciles, runs))


class DyingOutbox:
    """The router's worker, killed while queueing its fourth delivery task."""

    def __init__(self, real: Any, die_at: int) -> None:
        self.real, self.die_at, self.calls = real, die_at, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        outbox = self.real(*args, **kwargs)
        send = outbox.deliver

        def deliver(destination: str, bundle: dict[str, Any]) -> None:
            self.calls += 1
            if self.calls == self.die_at:
                raise WorkerDied(f"killed before queueing for {destination}")
            send(destination, bundle)

        outbox.deliver = deliver
        return outbox


def test_a_router_killed_after_queueing_three_of_five_tasks_queues_only_the_other_two_on_redelivery(
    hub: wiring.Wiring, inboxes: PeerInboxes, runs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    content = objects(2)
    body = envelope(hub, content)
    bodies(hub, "envelopes")
    monkeypatch.setattr(runs_module, "SqsOutbox", DyingOutbox(SqsOutbox, die_at=4))
    # When the router is killed while queueing the fourth task (versions claimed, three tasks queued)
    with pytest.raises(WorkerDied):
        router.lambda_handler(event([body]), localrun.LocalContext())
    first = bodies(hub, "deliveries")
    assert sorted(orjson.loads(t)["destination"] for t in first) == ["d1", "d2", "d3"]
    # When the envelope comes back
    assert router.lambda_handler(event([body]), localrun.LocalContext()) == {"batchItemFailures": []}
    # Then only d4 and d5 are queued now
    assert (runs[0]["duplicate"], runs[0]["deliveries"]) == (2, {"d4": 2, "d5": 2}) and reconciles(runs[0])
    later = bodies(hub, "deliveries")
    assert sorted(orjson.loads(t)["destination"] for t in later) == ["d4", "d5"]
    # and the five tasks deliver each object once to each destination
    assert deliver.lambda_handler(event(first + later), localrun.LocalContext()) == {"batchItemFailures": []}
    assert_nothing_lost(hub, inboxes, content)


def test_queueing_again_never_lets_through_what_dedupe_stopped(
    hub: wiring.Wiring, inboxes: PeerInboxes, runs: list[dict[str, Any]]
) -> None:
    (x,) = objects(1)
    body = envelope(hub, [x])
    bodies(hub, "envelopes")
    # Given a run that claimed x but could not queue its task for d3
    Refuse(hub.sqs, {"SendMessage"}, times=5, code="ServiceUnavailable", status=503, after=2)
    assert router.lambda_handler(event([body]), localrun.LocalContext())["batchItemFailures"]
    first = bodies(hub, "deliveries")
    # When the same sender sends x again, with other content under x's id and version in the same input
    other = envelope(hub, [x, {**x, "name": "changed"}])
    bodies(hub, "envelopes")
    assert router.lambda_handler(event([other]), localrun.LocalContext()) == {"batchItemFailures": []}
    # Then the other content is quarantined as a conflict, and nothing of that input is queued
    assert (runs[-1]["duplicate"], runs[-1]["quarantined"], runs[-1]["deliveries"]) == (1, 1, {})
    assert reconciles(runs[-1]) and bodies(hub, "deliveries") == []
    # and x's own envelope, when it comes back, queues d3's task: x reaches every destination once
    assert router.lambda_handler(event([body]), localrun.LocalContext()) == {"batchItemFailures": []}
    later = bodies(hub, "deliveries")
    assert deliver.lambda_handler(event(first + later), localrun.LocalContext()) == {"batchItemFailures": []}
    assert_nothing_lost(hub, inboxes, [x])
    assert not any(o.get("name") == "changed" for _, b in inboxes.received for o in b["objects"])
