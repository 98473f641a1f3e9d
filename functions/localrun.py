"""Running the handlers off AWS (`gateway serve`, `gateway demo`, tests): queues, events and contexts as AWS makes them.

`serve` creates the queues once (`create_queues`), hands the handlers its wiring (`functions.wiring.use`), then
loops: `drain_once(sqs, url, router.lambda_handler)` for the envelopes queue, the same with the deliverer for the
deliveries queue, `poll(connector_id)` on each connector's schedule, and `take_mail_file(...)` for each `.eml`
dropped in the watched folder. A record that fails stays in its queue (SQS makes it visible again after the
visibility timeout and moves it to the dead-letter queue after `max_receive_count` tries). moto keeps queues in
memory: on stop, `save_queues` writes what is still queued under `--state`, and `load_queues` queues it again on
the next start, so stopping `serve` loses nothing that was queued.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

_log = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any], Any], Any]
QUEUES = ("envelopes", "deliveries")
REGION = "us-east-1"
ACCOUNT = "000000000000"


@dataclass
class LocalContext:
    """The parts of Lambda's context object that handlers and Powertools read."""

    function_name: str = "renkei-local"
    timeout_seconds: float = 60.0
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/renkei/local"
    log_stream_name: str = "local"
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


def create_queues(sqs: Any, prefix: str, max_receive_count: int = 5, visibility_timeout: int = 360) -> dict[str, str]:
    """The envelopes and deliveries queues, each with its dead-letter queue, as the stack makes them.

    Returns name -> URL for `envelopes`, `deliveries`, `envelopes-dlq`, `deliveries-dlq`.
    """
    urls: dict[str, str] = {}
    for name in QUEUES:
        dlq = sqs.create_queue(QueueName=f"{prefix}-{name}-dlq", Attributes={"MessageRetentionPeriod": "1209600"})
        arn = sqs.get_queue_attributes(QueueUrl=dlq["QueueUrl"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = orjson.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": max_receive_count}).decode()
        queue = sqs.create_queue(
            QueueName=f"{prefix}-{name}",
            Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": str(visibility_timeout)},
        )
        urls[name], urls[f"{name}-dlq"] = queue["QueueUrl"], dlq["QueueUrl"]
    return urls


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event an SQS event source mapping hands a function, from `receive_message` results."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {
                    k: {
                        "stringValue": v.get("StringValue"),
                        "binaryValue": v.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": v["DataType"],
                    }
                    for k, v in m.get("MessageAttributes", {}).items()
                },
                "md5OfBody": m.get("MD5OfBody") or hashlib.md5(m["Body"].encode()).hexdigest(),  # noqa: S324
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def s3_put_event(bucket: str, key: str, size: int) -> dict[str, Any]:
    """The S3 `ObjectCreated:Put` event of one object (keys URL-encoded as S3 sends them)."""
    from urllib.parse import quote_plus

    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(key, safe="/"), "size": size},
                },
            }
        ]
    }


def scheduled_event(connector_id: str) -> dict[str, Any]:
    """What EventBridge Scheduler sends the poller: the schedule's input, as `gateway onboard --aws` sets it."""
    return {"connector": connector_id}


def drain_once(sqs: Any, queue_url: str, handler: Handler, wait_seconds: int = 1, batch: int = 10) -> tuple[int, int]:
    """Receive one batch, hand it to `handler` as an SQS event, delete the records it did not report failed.

    Returns (records handled, records failed). A handler that raises fails the whole batch, as on Lambda.
    """
    answer = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=batch,
        WaitTimeSeconds=wait_seconds,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    messages = answer.get("Messages", [])
    if not messages:
        return 0, 0
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    try:
        response = handler(sqs_event(messages, arn), LocalContext())
        failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
    except Exception as exc:  # noqa: BLE001 - as on Lambda: the whole batch returns to the queue, to be retried
        _log.warning("handler failed its whole batch: %s", type(exc).__name__)
        failed = {m["MessageId"] for m in messages}
    done = [m for m in messages if m["MessageId"] not in failed]
    for start in range(0, len(done), 10):
        entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done[start : start + 10])]
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    return len(messages), len(failed)


def take_mail_file(s3: Any, raw_bucket: str, connector_id: str, path: Path, handler: Handler) -> Any:
    """Store a dropped `.eml` where the connector's SES receipt rule would, then start mail ingest with its S3 event."""
    from functions.mail_ingest.handler import mail_key

    data = path.read_bytes()
    key = mail_key(connector_id, f"{hashlib.sha256(data).hexdigest()[:16]}-{path.name}")
    s3.put_object(Bucket=raw_bucket, Key=key, Body=data)
    return handler(s3_put_event(raw_bucket, key, len(data)), LocalContext(function_name="renkei-mail-ingest"))


def save_queues(sqs: Any, queues: dict[str, str], folder: Path) -> int:
    """Write every message still queued (dead letters too) to `folder/<name>.jsonl`. Returns how many.

    moto keeps queues in memory only: without this, work queued when `serve --state` stops would be lost.
    Stop the workers first (let their current batch finish): a message in flight is not visible to save.
    """
    folder.mkdir(parents=True, exist_ok=True)
    saved = 0
    for name, url in queues.items():
        lines: list[bytes] = []
        while True:
            # A long visibility timeout: each message is read once, and none comes back during the save.
            batch = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=3600, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                break
            lines += [orjson.dumps({"body": m["Body"], "attributes": m.get("MessageAttributes", {})}) for m in batch]
        (folder / f"{name}.jsonl").write_bytes(b"\n".join(lines))
        saved += len(lines)
    return saved


def load_queues(sqs: Any, queues: dict[str, str], folder: Path) -> int:
    """Queue again what `save_queues` wrote (each file once: it is removed after loading). Returns how many."""
    loaded = 0
    for name, url in queues.items():
        path = folder / f"{name}.jsonl"
        if not path.exists():
            continue
        for line in path.read_bytes().splitlines():
            if line.strip():
                saved = orjson.loads(line)
                sqs.send_message(QueueUrl=url, MessageBody=saved["body"], MessageAttributes=saved["attributes"])
                loaded += 1
        path.unlink()
    return loaded
