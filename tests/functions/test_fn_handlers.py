"""The Lambda handlers, invoked in-process with events shaped as AWS sends them, against moto's server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import boto3
import orjson
import pytest

from connectors.aws.provision import create_buckets, create_tables
from connectors.aws.registry import DynamoRegistryStore
from functions import channels, localrun, wiring
from functions.deliver import handler as deliver
from functions.mail_ingest import handler as mail_ingest
from functions.poller import handler as poller
from functions.router import handler as router
from functions.runs import approve_pending, run_intakes
from gateway.errors import NotOnboarded, RetryableError
from gateway.intake import Intake, Refusal
from gateway.onboarding import change_record, diff_configs
from local.embedded import REGION, SerialMotoServer
from schemas.config import EmailConnector, HubConfig, TaxiiChannel
from schemas.tables import QUARANTINE_BUCKET, RAW_BUCKET
from schemas.tlp import Tlp
from tests.unit.stixdata import bundle, indicator, sid

pytestmark = pytest.mark.integration

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
ACCOUNT = "123456789012"


@dataclass
class FakeContext:
    """What handlers read of Lambda's context object."""

    function_name: str = "renkei-test"
    function_version: str = "$LATEST"
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:renkei-test"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    log_group_name: str = "/aws/lambda/renkei-test"
    log_stream_name: str = "2026/11/23/[$LATEST]abc"
    remaining_ms: int = 60_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Aws:
    endpoint: str
    session: Any
    tables: dict[str, str]
    buckets: dict[str, str]
    queues: dict[str, str]  # name -> url (envelopes, deliveries and their -dlq)

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint)

    def settings(self, queues: dict[str, str]) -> wiring.Settings:
        """The functions' settings on this moto server, with these envelopes and deliveries queues."""
        return wiring.Settings(
            state_table=self.tables["state"],
            registry_table=self.tables["registry"],
            objects_table=self.tables["objects"],
            raw_bucket=self.buckets[RAW_BUCKET],
            quarantine_bucket=self.buckets[QUARANTINE_BUCKET],
            envelopes_queue_url=queues["envelopes"],
            deliveries_queue_url=queues["deliveries"],
            endpoint_url=self.endpoint,
            config_ttl_seconds=0,
        )


@pytest.fixture(scope="module")
def aws() -> Iterator[Aws]:
    server = SerialMotoServer()
    server.start()
    try:
        session = boto3.session.Session(region_name=REGION, **CREDENTIALS)
        prefix = f"fn-{uuid.uuid4().hex[:8]}"
        dynamodb = session.client("dynamodb", endpoint_url=server.endpoint)
        s3 = session.client("s3", endpoint_url=server.endpoint)
        yield Aws(server.endpoint, session, create_tables(dynamodb, prefix), create_buckets(s3, prefix), {})
    finally:
        server.stop()


def hub_config(drop: Path, **drop_choices: Any) -> HubConfig:
    return HubConfig.model_validate(
        {
            "hub": {"id": "test-hub"},
            "communities": [
                {"id": "isac-a", "kind": "isac", "deliver": [{"pull": {}}]},
                {
                    "id": "isac-b",
                    "kind": "isac",
                    "deliver": [{"taxii": {"url": "https://b.example/api/", "collection": "c1"}}],
                },
                {"id": "fsa", "kind": "regulator", "deliver": [{"pull": {}}]},
            ],
            "connectors": [
                {
                    "id": "drop",
                    "type": "stix",
                    "source": str(drop),
                    "sender": {"org": "Org A", "community": "isac-a"},
                    "tlp": "GREEN",
                    "scope": {"share_with": "all"},
                    **drop_choices,
                },
                {
                    "id": "mailbox",
                    "type": "email",
                    "address": "report@hub.example",
                    "authenticate": "none",
                    "sender": {"org": "Mail reporters"},
                    "tlp": "GREEN",
                    "members": [
                        {
                            "match": "*@bank-a.example",
                            "org": "Bank A",
                            "community": "isac-a",
                            "scope": {"share_with": ["isac-a"]},
                            "approval": "required",
                        }
                    ],
                },
            ],
        }
    )


class Routing:
    """The config the handlers see; a test may change it between routing and delivery."""

    def __init__(self, config: HubConfig) -> None:
        self.config = config
        self.version = 1

    def __call__(self) -> tuple[HubConfig, str]:
        return self.config, f"test:{self.version}"

    def change(self, config: HubConfig) -> None:
        self.config, self.version = config, self.version + 1


class TaxiiRecorder:
    """Stands in for the TAXII push sender of isac-b: records what it was given, or fails."""

    sent: ClassVar[list[tuple[str, dict[str, Any]]]] = []
    fail: ClassVar[bool] = False

    def __init__(self, channel: Any) -> None:
        self.channel = channel

    def deliver(self, destination: str, bundle: dict[str, Any]) -> None:
        if TaxiiRecorder.fail:
            raise RetryableError("taxii server answered 503")
        TaxiiRecorder.sent.append((destination, bundle))


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


@pytest.fixture
def routing(drop: Path) -> Routing:
    return Routing(hub_config(drop))


def fresh_queues(aws: Aws) -> dict[str, str]:
    """Queues of this test only, each with a dead-letter queue (moto slows down as a queue fills)."""
    sqs, prefix, queues = aws.client("sqs"), f"fn-{uuid.uuid4().hex[:8]}", {}
    for name in ("envelopes", "deliveries"):
        dlq = sqs.create_queue(QueueName=f"{prefix}-{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = orjson.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}).decode()
        attributes = {"RedrivePolicy": redrive}
        queues[name] = sqs.create_queue(QueueName=f"{prefix}-{name}", Attributes=attributes)["QueueUrl"]
        queues[f"{name}-dlq"] = dlq
    return queues


@pytest.fixture
def hub(aws: Aws, routing: Routing, monkeypatch: pytest.MonkeyPatch) -> Iterator[wiring.Wiring]:
    aws.queues = fresh_queues(aws)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    monkeypatch.setitem(channels.BUILDERS, TaxiiChannel, lambda community, channel, w: TaxiiRecorder(channel))
    TaxiiRecorder.sent, TaxiiRecorder.fail = [], False
    w = wiring.Wiring(aws.settings(aws.queues), session=aws.session, config_source=routing, seal_key=b"k" * 32)
    wiring.use(w)
    try:
        yield w
    finally:
        wiring.use(None)
        sqs = aws.client("sqs")
        for url in aws.queues.values():
            sqs.delete_queue(QueueUrl=url)


# --- events as AWS shapes them ------------------------------------------------------------------------


def sqs_event(aws: Aws, queue: str, bodies: list[str]) -> dict[str, Any]:
    """An SQS event source mapping's event: one record per body, with ids to report failures by."""
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{aws.queues[queue].rsplit('/', 1)[-1]}"
    return {
        "Records": [
            {
                "messageId": f"msg-{n}",
                "receiptHandle": f"handle-{n}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1763856000000",
                    "SenderId": ACCOUNT,
                    "ApproximateFirstReceiveTimestamp": "1763856000001",
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": REGION,
            }
            for n, body in enumerate(bodies)
        ]
    }


def s3_event(bucket: str, key: str, size: int) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": "2026-11-23T04:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:SES"},
                "requestParameters": {"sourceIPAddress": "10.0.0.1"},
                "responseElements": {"x-amz-request-id": "r", "x-amz-id-2": "i"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "mail",
                    "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A"}, "arn": f"arn:aws:s3:::{bucket}"},
                    # S3 sends keys URL-encoded, spaces as '+'
                    "object": {"key": key.replace(" ", "+"), "size": size, "eTag": "e", "sequencer": "1"},
                },
            }
        ]
    }


def ses_event(message_id: str, recipients: list[str]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventSource": "aws:ses",
                "eventVersion": "1.0",
                "ses": {
                    "mail": {
                        "timestamp": "2026-11-23T04:00:00.000Z",
                        "source": "someone@bank-a.example",
                        "messageId": message_id,
                        "destination": recipients,
                        "headersTruncated": False,
                        "headers": [],
                        "commonHeaders": {"from": ["someone@bank-a.example"], "to": recipients, "subject": "x"},
                    },
                    "receipt": {
                        "timestamp": "2026-11-23T04:00:00.000Z",
                        "processingTimeMillis": 10,
                        "recipients": recipients,
                        "spamVerdict": {"status": "PASS"},
                        "virusVerdict": {"status": "PASS"},
                        "spfVerdict": {"status": "PASS"},
                        "dkimVerdict": {"status": "PASS"},
                        "dmarcVerdict": {"status": "PASS"},
                        "action": {"type": "Lambda", "functionArn": "arn:aws:lambda:x", "invocationType": "Event"},
                    },
                },
            }
        ]
    }


# --- helpers ------------------------------------------------------------------------------------------


def receive_all_from(aws: Aws, url: str) -> list[dict[str, Any]]:
    sqs = aws.client("sqs")
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=60)
        if not batch.get("Messages"):
            return messages
        messages += batch["Messages"]


def tasks_in(aws: Aws, url: str) -> dict[str, dict[str, Any]]:
    """The delivery tasks queued at `url`, by destination."""
    return {t["destination"]: t for t in (orjson.loads(m["Body"]) for m in receive_all_from(aws, url))}


def tasks(aws: Aws) -> dict[str, dict[str, Any]]:
    """The queued delivery tasks of this test's deliveries queue, by destination."""
    return tasks_in(aws, aws.queues["deliveries"])


def collection(aws: Aws, community: str) -> set[str]:
    items = aws.client("dynamodb").query(
        TableName=aws.tables["objects"],
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"col#{community}"}},
    )["Items"]
    return {orjson.loads(i["body"]["S"])["id"] for i in items if "body" in i and i["is_definition"]["BOOL"] is False}


def idempotency_records(aws: Aws) -> list[dict[str, Any]]:
    return aws.client("dynamodb").query(
        TableName=aws.tables["state"],
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "idempotency#deliver"}},
    )["Items"]


def raw_keys(aws: Aws) -> set[str]:
    listing = aws.client("s3").list_objects_v2(Bucket=aws.buckets[RAW_BUCKET], Prefix="raw/")
    return {o["Key"] for o in listing.get("Contents", [])}


# --- poller -------------------------------------------------------------------------------------------


def test_poller_stores_raw_first_and_queues_one_task_per_allowed_destination(
    aws: Aws, hub: wiring.Wiring, drop: Path
) -> None:
    # Given a bundle of two GREEN indicators in the connector's folder
    raw = bundle(indicator("a"), indicator("b"))
    (drop / "advisory.json").write_bytes(raw)
    # When the schedule starts the poller with its input
    answer = poller.lambda_handler({"connector": "drop"}, FakeContext())
    # Then the raw input is in the raw bucket, content-addressed
    assert any(k.endswith(hashlib.sha256(raw).hexdigest()) for k in raw_keys(aws))
    # and the run summary counts both objects as delivered (queued) to every community
    assert answer["status"] == "ok"
    assert (answer["objects"], answer["delivered"]) == (2, 2)
    assert answer["deliveries"] == {"isac-a": 2, "isac-b": 2, "fsa": 2}
    queued = tasks(aws)
    assert set(queued) == {"isac-a", "isac-b", "fsa"}
    assert queued["fsa"]["connector"] == "drop" and queued["fsa"]["objects"] == 2
    assert {o["id"] for o in queued["fsa"]["bundle"]["objects"] if o["type"] == "indicator"} == {
        sid("indicator", "a"),
        sid("indicator", "b"),
    }


def test_poller_polls_again_without_queueing_duplicates(aws: Aws, hub: wiring.Wiring, drop: Path) -> None:
    (drop / "advisory.json").write_bytes(bundle(indicator(fresh("dup"))))
    first = poller.lambda_handler({"connector": "drop"}, FakeContext())
    tasks(aws)
    second = poller.lambda_handler({"connector": "drop"}, FakeContext())
    assert (first["delivered"], second["delivered"], second["duplicate"]) == (1, 0, 1)
    assert tasks(aws) == {}


@pytest.mark.parametrize(
    ("event", "status"),
    [({"connector": "gone"}, "unknown-connector"), ({"something": "else"}, "invalid-event")],
)
def test_poller_answers_a_bad_schedule_without_asking_for_a_retry(
    aws: Aws, hub: wiring.Wiring, event: dict[str, Any], status: str
) -> None:
    assert poller.lambda_handler(event, FakeContext())["status"] == status
    assert tasks(aws) == {}


def test_poller_of_a_hub_not_onboarded_says_so_without_raising(aws: Aws, hub: wiring.Wiring) -> None:
    def nothing() -> tuple[HubConfig, str]:
        raise NotOnboarded("empty registry")

    hub.config_source = nothing
    assert poller.lambda_handler({"connector": "drop"}, FakeContext()) == {"status": "not-onboarded"}


def test_poller_reports_an_unreadable_source_and_does_not_raise(aws: Aws, hub: wiring.Wiring, drop: Path) -> None:
    drop.rmdir()
    assert poller.lambda_handler({"connector": "drop"}, FakeContext())["status"] == "source-unavailable"


# --- deliverer ----------------------------------------------------------------------------------------


def fresh(name: str) -> str:
    """A name no earlier test used: the state table is shared by the module, and dedupe remembers."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def _route(aws: Aws, drop: Path, *objects: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (drop / f"{uuid.uuid4().hex}.json").write_bytes(bundle(*objects))
    poller.lambda_handler({"connector": "drop"}, FakeContext())
    return tasks(aws)


def test_deliverer_reports_exactly_the_failed_records(aws: Aws, hub: wiring.Wiring, drop: Path) -> None:
    # Given tasks for a pull community, a TAXII community whose server is down, and a malformed record
    a = indicator(fresh("a"))
    queued = _route(aws, drop, a)
    TaxiiRecorder.fail = True
    bodies = [orjson.dumps(queued["isac-a"]).decode(), orjson.dumps(queued["isac-b"]).decode(), '{"not": "a task"}']
    # When the deliverer gets them in one batch
    answer = deliver.lambda_handler(sqs_event(aws, "deliveries", bodies), FakeContext())
    # Then exactly the TAXII task and the malformed one are reported failed (to be retried, then dead-lettered)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "msg-1"}, {"itemIdentifier": "msg-2"}]}
    # and the pull community's collection holds the object
    assert collection(aws, "isac-a") == {a["id"]}
    assert TaxiiRecorder.sent == []


def test_deliverer_never_sends_twice_on_a_channel_that_took_the_bundle(
    aws: Aws, hub: wiring.Wiring, drop: Path
) -> None:
    # Given a task delivered once
    queued = _route(aws, drop, indicator(fresh("a")))
    event = sqs_event(aws, "deliveries", [orjson.dumps(queued["isac-b"]).decode()])
    before = idempotency_records(aws)
    assert deliver.lambda_handler(event, FakeContext()) == {"batchItemFailures": []}
    # When SQS delivers the same message again
    assert deliver.lambda_handler(event, FakeContext()) == {"batchItemFailures": []}
    # Then the TAXII server received it once, and the idempotency record sits in the state table
    assert [d for d, _ in TaxiiRecorder.sent] == ["isac-b"]
    (held,) = [r for r in idempotency_records(aws) if r not in before]
    assert held["status"]["S"] == "COMPLETED"
    # kept past the dead-letter queue's retention (14 days), so a redrive does not send again either
    assert int(held["expires_at"]["N"]) > time.time() + 14 * 86_400


def test_deliverer_retries_a_failed_send_and_then_sends(aws: Aws, hub: wiring.Wiring, drop: Path) -> None:
    queued = _route(aws, drop, indicator(fresh("a")))
    event = sqs_event(aws, "deliveries", [orjson.dumps(queued["isac-b"]).decode()])
    TaxiiRecorder.fail = True
    assert deliver.lambda_handler(event, FakeContext()) == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    TaxiiRecorder.fail = False
    assert deliver.lambda_handler(event, FakeContext()) == {"batchItemFailures": []}
    assert [d for d, _ in TaxiiRecorder.sent] == ["isac-b"]


def test_deliverer_checks_the_policy_again_with_the_config_as_it_is_now(
    aws: Aws, hub: wiring.Wiring, routing: Routing, drop: Path
) -> None:
    # Given a task for the regulator, routed while the sender still shared with everyone
    a = indicator(fresh("a"))
    queued = _route(aws, drop, a)
    # When the sender excludes regulators before the task is delivered
    routing.change(hub_config(drop, scope={"share_with": "all", "exclude": [{"kind": "regulator"}]}))
    answer = deliver.lambda_handler(sqs_event(aws, "deliveries", [orjson.dumps(queued["fsa"]).decode()]), FakeContext())
    # Then the task is done (not retried) and the regulator received nothing
    assert answer == {"batchItemFailures": []}
    assert a["id"] not in collection(aws, "fsa")
    # and `trace` will say why: the version record holds the decision made at delivery
    assert hub.state is not None
    (record,) = hub.state.history(a["id"])
    assert record.decisions["fsa"] == (False, "scope:excluded-kind:regulator")
    assert record.decisions["isac-a"] == (True, "tlp:green-own-community")


def test_deliverer_reads_a_large_bundle_from_s3(aws: Aws, hub: wiring.Wiring, drop: Path) -> None:
    # Given enough objects that the bundle travels by reference
    objects = [indicator(fresh(f"bulk-{n}"), description="x" * 12_000) for n in range(20)]
    queued = _route(aws, drop, *objects)
    task = queued["isac-a"]
    assert "bundle" not in task and task["bundle_ref"].startswith("s3://")
    # When / Then it is delivered whole
    assert deliver.lambda_handler(sqs_event(aws, "deliveries", [orjson.dumps(task).decode()]), FakeContext()) == {
        "batchItemFailures": []
    }
    assert {o["id"] for o in objects} <= collection(aws, "isac-a")


# --- router -------------------------------------------------------------------------------------------


def test_router_routes_envelopes_and_reports_exactly_the_bad_ones(aws: Aws, hub: wiring.Wiring) -> None:
    # Given one envelope whose raw bundle is in S3, one for an unknown connector, and one that is no envelope
    assert hub.blobs is not None
    ref = hub.blobs.put("raw/inbox/peer-1.json", bundle(indicator(fresh("from-peer"), tlp=Tlp.CLEAR)))
    good = orjson.dumps({"connector": "drop", "raw_ref": ref, "name": "peer inbox", "hops": ["other-hub"]}).decode()
    unknown = orjson.dumps({"connector": "gone", "raw_ref": ref}).decode()
    # When the router gets them in one batch
    answer = router.lambda_handler(sqs_event(aws, "envelopes", [unknown, good, "{"]), FakeContext())
    # Then the two bad ones are reported, and the good one is routed into delivery tasks
    assert answer == {"batchItemFailures": [{"itemIdentifier": "msg-0"}, {"itemIdentifier": "msg-2"}]}
    queued = tasks(aws)
    assert set(queued) == {"isac-a", "isac-b", "fsa"}
    (obj,) = [o for o in queued["isac-a"]["bundle"]["objects"] if o["type"] == "indicator"]
    hops = next(
        e["hops"] for k, e in obj["extensions"].items() if k.startswith("extension-definition--") and "hops" in e
    )
    assert hops == ["other-hub", "test-hub"]


# --- mail ingest --------------------------------------------------------------------------------------


@pytest.fixture
def mail_reader(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bytes, str]]:
    """Stands in for connectors.email.source.intake_from_message (another package): records and converts."""
    seen: list[tuple[str, bytes, str]] = []

    def read(connector: EmailConnector, raw: bytes, name: str) -> Intake:
        seen.append((connector.id, raw, name))
        if b"crash" in raw:
            raise UnicodeDecodeError("utf-8", raw, 0, 1, "hostile")
        if b"spoofed" in raw:
            return Intake(name, raw, refusal=Refusal("mail:dmarc-fail", "DMARC failed"))
        return Intake(name, raw, objects=[indicator(fresh("from-mail"))])

    monkeypatch.setattr(mail_ingest, "intake_from_message", read)
    return seen


def test_mail_ingest_takes_the_stored_message_of_an_s3_event(
    aws: Aws, hub: wiring.Wiring, mail_reader: list[tuple[str, bytes, str]]
) -> None:
    # Given a message that the receipt rule of `mailbox` stored (a key with a space, as S3 encodes it)
    raw = b"From: someone@bank-a.example\r\nSubject: phish\r\n\r\nbody\r\n"
    bucket, key = aws.buckets[RAW_BUCKET], "mail/mailbox/msg 1"
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=raw)
    # When the S3 event arrives
    answer = mail_ingest.lambda_handler(s3_event(bucket, key, len(raw)), FakeContext())
    # Then the connector's reader got the bytes, and the object was routed
    assert answer == {"status": "ok", "messages": 1, "skipped": 0}
    assert mail_reader == [("mailbox", raw, f"s3://{bucket}/{key}")]
    assert set(tasks(aws)) == {"isac-a", "isac-b", "fsa"}


def test_mail_ingest_finds_the_message_of_an_ses_event_by_its_recipient(
    aws: Aws, hub: wiring.Wiring, mail_reader: list[tuple[str, bytes, str]]
) -> None:
    raw = b"From: spoofed@bank-a.example\r\n\r\nbody\r\n"
    aws.client("s3").put_object(Bucket=aws.buckets[RAW_BUCKET], Key="mail/mailbox/ses-42", Body=raw)
    answer = mail_ingest.lambda_handler(ses_event("ses-42", ["Report@Hub.example", "other@x.example"]), FakeContext())
    assert answer["messages"] == 1
    assert [m[0] for m in mail_reader] == ["mailbox"]
    # a refused mail is quarantined with its reason, nothing is queued
    assert tasks(aws) == {}
    assert any(q.reason == "mail:dmarc-fail" for q in hub.state.quarantined())  # type: ignore[union-attr]


def test_mail_ingest_quarantines_a_mail_the_parser_cannot_read(
    aws: Aws, hub: wiring.Wiring, mail_reader: list[tuple[str, bytes, str]]
) -> None:
    raw = b"crash me"
    key = f"mail/mailbox/{fresh('hostile')}"
    aws.client("s3").put_object(Bucket=aws.buckets[RAW_BUCKET], Key=key, Body=raw)
    answer = mail_ingest.lambda_handler(s3_event(aws.buckets[RAW_BUCKET], key, len(raw)), FakeContext())
    assert answer["messages"] == 1
    assert tasks(aws) == {}
    (record,) = [q for q in hub.state.quarantined() if q.input_name.endswith(key)]  # type: ignore[union-attr]
    assert (record.reason, record.detail) == ("mail:unreadable", "the mail parser failed: UnicodeDecodeError")


def test_mail_ingest_skips_a_message_of_an_unknown_mailbox(
    aws: Aws, hub: wiring.Wiring, mail_reader: list[tuple[str, bytes, str]]
) -> None:
    answer = mail_ingest.lambda_handler(s3_event(aws.buckets[RAW_BUCKET], "mail/gone/m1", 10), FakeContext())
    assert answer == {"status": "ok", "messages": 0, "skipped": 1}
    assert mail_reader == []


# --- wiring from the registry -------------------------------------------------------------------------


def test_wiring_reads_routing_from_the_registry_and_secrets_from_ssm(
    aws: Aws, routing: Routing, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an onboarded config whose TAXII channel names a password by environment variable
    config = HubConfig.model_validate(
        {
            **routing.config.model_dump(mode="json", exclude_none=True),
            "communities": [
                {
                    "id": "isac-b",
                    "kind": "isac",
                    "deliver": [
                        {
                            "taxii": {
                                "url": "https://b.example/api/",
                                "collection": "c1",
                                "auth": {"username": "renkei", "password_env": "RENKEI_TEST_B_PASSWORD"},
                            }
                        }
                    ],
                }
            ],
        }
    )
    registry = DynamoRegistryStore(aws.tables["registry"], aws.client("dynamodb"))
    held = registry.current()
    diff = diff_configs(held[1] if held else None, config)
    registry.apply(config, held[0] if held else None, change_record(diff, config, "test", "2026-11-23T00:00:00Z"))
    # and the password stored in SSM under the hub's path
    aws.client("ssm").put_parameter(
        Name="/renkei/test-hub/RENKEI_TEST_B_PASSWORD", Value="s3cret", Type="SecureString", Overwrite=True
    )
    monkeypatch.delenv("RENKEI_TEST_B_PASSWORD", raising=False)
    for name, value in {
        "RENKEI_STATE_TABLE": aws.tables["state"],
        "RENKEI_REGISTRY_TABLE": aws.tables["registry"],
        "RENKEI_OBJECTS_TABLE": aws.tables["objects"],
        "RENKEI_RAW_BUCKET": aws.buckets[RAW_BUCKET],
        "RENKEI_QUARANTINE_BUCKET": aws.buckets[QUARANTINE_BUCKET],
        "RENKEI_SECRETS_PATH": "/renkei/test-hub/",
        "RENKEI_ENDPOINT_URL": aws.endpoint,
        "RENKEI_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    # When a handler's wiring is built from the environment, as on Lambda
    wiring.use(None)
    try:
        got, version = wiring.current().config()
    finally:
        wiring.use(None)
    # Then routing is the onboarded config, and the secret is in the environment for the channel
    assert got == config
    assert version.startswith("registry:")
    import os

    assert os.environ["RENKEI_TEST_B_PASSWORD"] == "s3cret"


# --- the same handlers driven locally, as `gateway serve` does ---------------------------------------


@pytest.fixture
def served(aws: Aws, hub: wiring.Wiring) -> Iterator[dict[str, str]]:
    """Queues as `serve` makes them, redelivering at once, dead-lettering after two tries; the wiring on them."""
    queues = localrun.create_queues(
        aws.client("sqs"), f"serve-{uuid.uuid4().hex[:8]}", max_receive_count=2, visibility_timeout=0
    )
    settings = hub.settings.model_copy(
        update={"envelopes_queue_url": queues["envelopes"], "deliveries_queue_url": queues["deliveries"]}
    )
    wiring.use(wiring.Wiring(settings, session=aws.session, config_source=hub.config_source, seal_key=b"k" * 32))
    yield queues


def test_serve_loop_delivers_and_a_down_destination_waits_in_the_dead_letter_queue_then_is_delivered_once(
    aws: Aws, served: dict[str, str], drop: Path
) -> None:
    sqs = aws.client("sqs")
    a = indicator(fresh("a"))
    (drop / "one.json").write_bytes(bundle(a))
    # Given the TAXII destination is down
    TaxiiRecorder.fail = True
    # When the scheduler polls and the worker drains the deliveries queue until it is empty
    poller.lambda_handler(localrun.scheduled_event("drop"), localrun.LocalContext())
    rounds = [localrun.drain_once(sqs, served["deliveries"], deliver.lambda_handler, wait_seconds=0) for _ in range(4)]
    # Then the pull communities got the object, and the TAXII task failed twice and sits in the dead-letter queue
    assert rounds[0] == (3, 1)
    assert a["id"] in collection(aws, "isac-a") and a["id"] in collection(aws, "fsa")
    assert localrun.drain_once(sqs, served["deliveries"], deliver.lambda_handler, wait_seconds=0) == (0, 0)
    dead = sqs.receive_message(QueueUrl=served["deliveries-dlq"], MaxNumberOfMessages=10)["Messages"]
    assert [orjson.loads(m["Body"])["destination"] for m in dead] == ["isac-b"]
    # When the destination is back and the dead letter is redriven, twice by mistake
    TaxiiRecorder.fail = False
    for _ in range(2):
        sqs.send_message(QueueUrl=served["deliveries"], MessageBody=dead[0]["Body"])
    while localrun.drain_once(sqs, served["deliveries"], deliver.lambda_handler, wait_seconds=0) != (0, 0):
        pass
    # Then it was delivered exactly once
    assert [
        (d, ids) for d, b in TaxiiRecorder.sent for ids in [[o["id"] for o in b["objects"] if o["type"] == "indicator"]]
    ] == [("isac-b", [a["id"]])]


def test_serve_keeps_queued_work_across_a_restart(aws: Aws, served: dict[str, str], drop: Path, tmp_path: Path) -> None:
    # Given delivery tasks queued and one dead letter, when `serve` stops
    sqs = aws.client("sqs")
    (drop / "one.json").write_bytes(bundle(indicator(fresh("a"))))
    poller.lambda_handler(localrun.scheduled_event("drop"), localrun.LocalContext())
    sqs.send_message(QueueUrl=served["deliveries-dlq"], MessageBody='{"dead": true}')
    assert localrun.save_queues(sqs, served, tmp_path / "queues") == 4
    # When it starts again on fresh queues
    fresh_queues = localrun.create_queues(sqs, f"restart-{uuid.uuid4().hex[:8]}")
    assert localrun.load_queues(sqs, fresh_queues, tmp_path / "queues") == 4
    # Then the same work waits in the same queues, and the saved files are consumed
    assert set(tasks_in(aws, fresh_queues["deliveries"])) == {"isac-a", "isac-b", "fsa"}
    assert [m["Body"] for m in receive_all_from(aws, fresh_queues["deliveries-dlq"])] == ['{"dead": true}']
    assert not list((tmp_path / "queues").glob("*.jsonl"))


def test_serve_takes_a_dropped_mail_file_through_mail_ingest(
    aws: Aws, served: dict[str, str], tmp_path: Path, mail_reader: list[tuple[str, bytes, str]]
) -> None:
    eml = tmp_path / "report 1.eml"
    eml.write_bytes(b"From: someone@bank-a.example\r\n\r\nbody\r\n")
    answer = localrun.take_mail_file(
        aws.client("s3"), aws.buckets[RAW_BUCKET], "mailbox", eml, mail_ingest.lambda_handler
    )
    assert answer["messages"] == 1
    assert mail_reader[0][0] == "mailbox" and mail_reader[0][1] == eml.read_bytes()
    assert localrun.drain_once(aws.client("sqs"), served["deliveries"], deliver.lambda_handler, wait_seconds=0) == (
        3,
        0,
    )


def test_an_approved_report_is_queued_under_its_members_policy_and_delivered(
    aws: Aws, hub: wiring.Wiring, routing: Routing
) -> None:
    # Given a member's report held for approval
    mailbox = routing.config.connector("mailbox")
    assert isinstance(mailbox, EmailConnector)
    member = mailbox.members[0]
    obj = indicator(fresh("reported"))
    taken = run_intakes(hub, routing.config, "test:1", "mailbox", [Intake("m1", b"raw", objects=[obj], member=member)])
    assert taken.summary()["pending"] == 1 and tasks(aws) == {}
    (pending,) = [p for p in hub.state.pending() if p.pending_id == taken.pending[0].pending_id]  # type: ignore[union-attr]
    # When the member approves it
    result = approve_pending(hub, pending.pending_id)
    # Then it is queued for the member's scope only, and the task names the member for the check at delivery
    assert result is not None and result.summary()["delivered"] == 1
    queued = tasks(aws)
    assert set(queued) == {"isac-a"}
    assert queued["isac-a"]["member"] == "*@bank-a.example"
    assert deliver.lambda_handler(
        sqs_event(aws, "deliveries", [orjson.dumps(queued["isac-a"]).decode()]), FakeContext()
    ) == {"batchItemFailures": []}
    assert obj["id"] in collection(aws, "isac-a")
    # and a second approval finds nothing to release
    assert approve_pending(hub, pending.pending_id) is None


def test_mail_ingest_with_the_real_mail_connector(aws: Aws, hub: wiring.Wiring) -> None:
    source = pytest.importorskip("connectors.email.source")
    if not hasattr(source, "intake_from_message"):
        pytest.skip("connectors.email.source has no intake_from_message yet")
    # Given a plain reported mail from a member, stored where the receipt rule puts it
    raw = (
        b"From: analyst@bank-a.example\r\nTo: report@hub.example\r\nSubject: suspicious mail\r\n"
        b"Message-ID: <r1@bank-a.example>\r\nDate: Mon, 23 Nov 2026 04:00:00 +0000\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nPlease look at hxxp://evil.example/login\r\n"
    )
    key = f"mail/mailbox/{fresh('real')}"
    aws.client("s3").put_object(Bucket=aws.buckets[RAW_BUCKET], Key=key, Body=raw)
    before = len(hub.state.quarantined())  # type: ignore[union-attr]
    # When / Then the handler takes it: routed (held for the member's approval) or quarantined with a reason
    assert mail_ingest.lambda_handler(s3_event(aws.buckets[RAW_BUCKET], key, len(raw)), FakeContext())["messages"] == 1
    held = [p for p in hub.state.pending() if p.input_name.endswith(key)]  # type: ignore[union-attr]
    assert held or tasks(aws) or len(hub.state.quarantined()) > before  # type: ignore[union-attr]
