"""Router: envelopes (raw inputs already in S3) from the envelopes queue, through the pipeline, into delivery tasks.

Producers are the API function (peer inbox, TAXII push) and `gateway serve`. Each SQS record is one envelope;
a record that fails is reported in `batchItemFailures` and comes back after the visibility timeout, and after
`maxReceiveCount` tries it waits in the dead-letter queue. A repeated envelope is harmless: dedupe claims each
object version once, so the second run counts duplicates and queues only what a failed run claimed but never
queued (functions/runs.py, `requeue_unqueued`); a task queued twice is sent once (the deliverer is idempotent).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions import wiring
from functions.mail_ingest.handler import read_mail
from functions.messages import EnvelopeMessage, read_message
from functions.observability import logger, metrics, tracer
from functions.runs import run_intakes
from gateway.errors import PermanentError, RetryableError
from gateway.intake import Intake
from schemas.config import EmailConnector


def handle_record(record: SQSRecord) -> None:
    """Route one envelope. Raising marks the record failed (retried, then dead-lettered)."""
    envelope = read_message(EnvelopeMessage, record.body, "an envelope")
    w = wiring.current()
    config, version = w.config()
    connector = config.connector(envelope.connector)
    if connector is None:
        # Kept, not dropped: the dead-letter queue holds it until the connector is onboarded again or it is purged.
        raise PermanentError(f"unknown connector {envelope.connector!r}")
    assert w.blobs is not None
    raw = w.blobs.get(envelope.raw_ref)
    name = envelope.name or envelope.raw_ref
    if isinstance(connector, EmailConnector):
        intake = read_mail(connector, raw, name)
    else:
        intake = Intake(name, raw, hops=envelope.hops)  # a STIX bundle (peer inbox, TAXII push)
    result = run_intakes(w, config, version, connector.id, [intake], requeue=True)
    if result.undelivered:
        # Not acknowledged: the envelope comes back, and its run queues what this one claimed but could not queue.
        raise RetryableError(f"{sum(result.undelivered.values())} routed object(s) not queued")


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)  # never let tracing capture intel payloads
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # One processor per invocation: it holds the batch's state, and `gateway serve` may run invocations in threads.
    # A batch whose every record failed is answered like any other (all listed), not raised: same outcome, one path.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=handle_record, processor=processor, context=context)
