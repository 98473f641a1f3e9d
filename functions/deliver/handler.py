"""Deliverer: delivery tasks from the deliveries queue, checked against the current policy, sent on each channel.

Per task: the bundle (inline or from S3), the policy checked again for its destination with the config as it
is now (functions/recheck.py), then each of the destination's channels in turn. Each (destination, channel,
bundle) send is idempotent (Powertools Idempotency on the state table, sha256 keys): a retried task, or the
same message delivered twice by SQS, never sends again on a channel that already took it. A task that fails
is reported in `batchItemFailures`, retried after the visibility timeout and finally dead-lettered.
"""

from __future__ import annotations

import uuid
from functools import lru_cache
from typing import Any

import orjson
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions import wiring
from functions.channels import channel_for, kind_of
from functions.messages import DeliveryTask, read_message
from functions.observability import count, logger, metrics, tracer
from functions.recheck import recheck, record_withheld
from gateway.errors import RenkeiError

# A send is remembered longer than a dead letter is kept (14 days): a redrive never sends twice.
IDEMPOTENCY_SECONDS = 15 * 86_400
idempotency = IdempotencyConfig(
    event_key_jmespath="[destination, channel, bundle_id]",
    raise_on_no_idempotency_key=True,
    expires_after_seconds=IDEMPOTENCY_SECONDS,
    hash_function="sha256",
)


@lru_cache(maxsize=4)
def _idempotent_send(w: wiring.Wiring) -> Any:
    """The send function, made idempotent on the state table of `w` (pk `idempotency#deliver`, sk the key)."""
    store = DynamoDBPersistenceLayer(
        table_name=w.settings.state_table,
        key_attr="pk",
        sort_key_attr="sk",
        static_pk_value="idempotency#deliver",
        expiry_attr="expires_at",  # the state table's TTL attribute
        boto3_client=w.dynamodb,
    )

    @idempotent_function(data_keyword_argument="send", config=idempotency, persistence_store=store)  # type: ignore[untyped-decorator]
    def send(send: dict[str, Any]) -> dict[str, Any]:
        config = w.config()[0]
        community = config.community(send["destination"])
        assert community is not None  # checked just before
        channel_config = community.deliver[send["index"]]
        channel_for(community, channel_config, w).deliver(send["destination"], send["bundle"])
        return {"sent": send["objects"], "attempt": send["attempt"]}

    return send


def _bundle(w: wiring.Wiring, task: DeliveryTask) -> dict[str, Any]:
    if task.bundle is not None:
        return task.bundle
    assert w.blobs is not None and task.bundle_ref is not None
    bundle: dict[str, Any] = orjson.loads(w.blobs.get(task.bundle_ref))
    return bundle


def handle_record(record: SQSRecord) -> None:
    """Deliver one task. Raising marks the record failed (retried, then dead-lettered)."""
    task = read_message(DeliveryTask, record.body, "a delivery task")
    w = wiring.current()
    config, version = w.config()  # read afresh at the start of this invocation
    bundle = _bundle(w, task)
    outcome = recheck(bundle, task.destination, config, task.connector, task.member)
    if outcome.withheld:
        assert w.state is not None
        record_withheld(w.state, bundle, task.destination, outcome.withheld)
        count("ObjectsWithheldAtDelivery", len(outcome.withheld), ("destination", task.destination))
        logger.info(
            "withheld at delivery",
            destination=task.destination,
            bundle=task.bundle_id,
            routed_under=task.config_version,
            config_version=version,
            reasons=sorted(set(outcome.withheld.values())),
            objects=sorted(outcome.withheld)[:50],
        )
    if outcome.bundle is None:
        return
    community = config.community(task.destination)
    assert community is not None  # recheck withholds everything from a removed destination
    send = _idempotent_send(w)
    attempt = uuid.uuid4().hex  # not part of the idempotency key: a replayed answer names an earlier attempt
    for index, channel in enumerate(community.deliver):
        try:
            answer = send(
                send={
                    "destination": task.destination,
                    "channel": f"{index}:{kind_of(channel)}",
                    "index": index,
                    "bundle_id": task.bundle_id,
                    "objects": len(outcome.allowed),
                    "bundle": outcome.bundle,
                    "attempt": attempt,
                }
            )
        except RenkeiError as exc:
            count("DeliveriesFailed", 1, ("destination", task.destination))
            failure = {"destination": task.destination, "channel": kind_of(channel), "error": type(exc).__name__}
            logger.warning("delivery failed", extra=failure)
            raise
        if answer.get("attempt") != attempt:
            continue  # sent by an earlier attempt (SQS delivered the task twice, a redrive): counted then
        count("ObjectsDelivered", len(outcome.allowed), ("destination", task.destination))
    logger.info("delivered", destination=task.destination, bundle=task.bundle_id, objects=len(outcome.allowed))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)  # never let tracing capture intel payloads
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # A send cut short by the Lambda timeout stays "in progress" only until the invocation would have ended.
    idempotency.register_lambda_context(context)
    # The config as it is now, not as cached: routing may be minutes old, a sender may have just excluded someone.
    wiring.current().fresh_config()
    # One processor per invocation: it holds the batch's state, and `gateway serve` may run invocations in threads.
    # A batch whose every record failed is answered like any other (all listed), not raised: same outcome, one path.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=handle_record, processor=processor, context=context)
