"""Mail ingest: a message that an SES receipt rule stored in the raw bucket, read and taken by its connector.

The receipt rule of each e-mail connector writes to `mail/<connector id>/<SES message id>` (the raw bytes are
in S3 before anything else), then starts this function. Two event shapes are accepted: the S3 event of that
object (also what `gateway serve` sends for a dropped `.eml`), and SES's own receipt event, whose message id
and recipients name the object.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from connectors.aws.errors import translate
from functions import wiring
from functions.context import time_left
from functions.observability import count, logger, metrics, tracer
from functions.runs import run_intakes
from gateway.errors import RenkeiError, RetryableError
from gateway.intake import Intake, Refusal
from schemas.config import EmailConnector, HubConfig

MAIL_PREFIX = "mail/"
# SES accepts messages up to 40 MB through S3: read one byte past it, so an oversized object is refused unread.
MAX_MAIL_BYTES = 40 * 1024 * 1024


def mail_key(connector_id: str, message_id: str) -> str:
    """Where the receipt rule of `connector_id` stores a message (the stack sets the same prefix)."""
    return f"{MAIL_PREFIX}{connector_id}/{message_id}"


def intake_from_message(connector: EmailConnector, raw: bytes, name: str) -> Intake:
    """The e-mail connector's reading of one message (imported when first needed: the mail parser is large)."""
    from connectors.email.source import intake_from_message as read

    intake: Intake = read(connector, raw, name)
    return intake


def stored_messages(event: dict[str, Any], config: HubConfig, raw_bucket: str) -> Iterator[tuple[str, str, str]]:
    """(connector id, bucket, key) of each stored message the event names; unknown ones are logged and skipped."""
    mailboxes = {c.address.lower(): c.id for c in config.connectors if isinstance(c, EmailConnector)}
    for record in event.get("Records", []):
        if record.get("eventSource") == "aws:ses":
            message_id = record["ses"]["mail"]["messageId"]
            recipients = {r.lower() for r in record["ses"]["receipt"].get("recipients", [])}
            for connector_id in sorted({mailboxes[r] for r in recipients if r in mailboxes}):
                yield connector_id, raw_bucket, mail_key(connector_id, message_id)
        elif record.get("eventSource") == "aws:s3":
            for s3_record in S3Event({"Records": [record]}).records:
                key = unquote_plus(s3_record.s3.get_object.key)  # S3 sends keys URL-encoded, spaces as '+'
                connector_id = key.removeprefix(MAIL_PREFIX).partition("/")[0] if key.startswith(MAIL_PREFIX) else ""
                yield connector_id, s3_record.s3.bucket.name, key
        else:
            logger.warning("not an S3 or SES record", event_source=str(record.get("eventSource"))[:40])


def read_object(s3: Any, bucket: str, key: str) -> bytes:
    """The stored message, at most one byte past the cap. Raises RetryableError / PermanentError."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        data: bytes = body.read(MAX_MAIL_BYTES + 1)
        body.close()
    except (BotoCoreError, ClientError) as exc:
        raise translate(exc, "s3 get_object") from exc
    return data


def read_mail(connector: EmailConnector, raw: bytes, name: str) -> Intake:
    """The connector's reading of a stored mail; a mail it cannot read at all is quarantined, never retried forever."""
    if len(raw) > MAX_MAIL_BYTES:
        return Intake(name, raw[:0], refusal=Refusal("mail:too-large", f"message over {MAX_MAIL_BYTES} bytes"))
    try:
        return intake_from_message(connector, raw, name)
    except RenkeiError:
        raise  # the connector's own verdicts: retryable (try again) or permanent
    except Exception as exc:  # noqa: BLE001 - hostile mail must not crash the worker: keep it with the reason
        logger.warning("mail parser failed", connector=connector.id, error=type(exc).__name__)
        return Intake(name, raw, refusal=Refusal("mail:unreadable", f"the mail parser failed: {type(exc).__name__}"))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)  # never let tracing capture intel payloads
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Take each stored message. Raises RetryableError (Lambda retries the event, then its dead-letter queue)."""
    w = wiring.current()
    config, version = w.config()
    taken, skipped = 0, 0
    for connector_id, bucket, key in stored_messages(event, config, w.settings.raw_bucket):
        connector = config.connector(connector_id)
        if not isinstance(connector, EmailConnector):
            # A message for a mailbox that is no longer configured stays in the raw bucket for replay.
            skipped += 1
            count("MailUnrouted", 1)
            logger.warning("no e-mail connector for stored message", connector=connector_id[:128], key=key[:256])
            continue
        raw = read_object(w.s3, bucket, key)
        name = f"s3://{bucket}/{key}"
        result = run_intakes(
            w, config, version, connector.id, [read_mail(connector, raw, name)], time_left(context), requeue=True
        )
        if result.undelivered:
            # Lambda retries the event: the same mail again, whose run queues what this one claimed but could not.
            raise RetryableError(f"{sum(result.undelivered.values())} routed object(s) not queued")
        taken += 1
    return {"status": "ok", "messages": taken, "skipped": skipped}
