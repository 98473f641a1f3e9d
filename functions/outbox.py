"""The pipeline's channel inside AWS: each routed bundle becomes a delivery task on the deliveries queue.

The deliverer (functions/deliver) sends it on the destination's channels, after checking the policy again.
"""

from __future__ import annotations

from typing import Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from connectors.aws.errors import translate
from functions.messages import INLINE_BUNDLE_BYTES, DeliveryTask
from gateway.ports import BlobStore
from schemas.config import MemberRule


class SqsOutbox:
    """Implements gateway.ports.Channel by queueing. Set `sender(...)` before each intake is taken."""

    def __init__(self, sqs: Any, queue_url: str, blobs: BlobStore, config_version: str = "") -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._blobs = blobs
        self._config_version = config_version
        self._connector = ""
        self._member: str | None = None
        self.queued: list[tuple[str, str]] = []  # (destination, bundle id) queued by this outbox

    def sender(self, connector: str, member: MemberRule | None = None) -> None:
        """Whose policy the next bundles follow: the connector, and the e-mail member the input came from."""
        self._connector = connector
        self._member = member.match if member is not None else None

    def deliver(self, destination: str, bundle: dict[str, Any]) -> None:
        """Queue the bundle for `destination`. Raises RetryableError / PermanentError when SQS or S3 refuses."""
        if not self._connector:
            raise RuntimeError("SqsOutbox.sender() was not called")  # a wiring bug, not an input problem
        body = orjson.dumps(bundle)
        objects = sum(
            1 for o in bundle["objects"] if o.get("type") not in ("marking-definition", "extension-definition")
        )
        task: dict[str, Any] = {
            "destination": destination,
            "bundle_id": bundle["id"],
            "connector": self._connector,
            "member": self._member,
            "config_version": self._config_version,
            "objects": objects,
        }
        if len(body) > INLINE_BUNDLE_BYTES:
            task["bundle_ref"] = self._blobs.put(f"deliveries/{destination}/{bundle['id']}.json", body)
        else:
            task["bundle"] = bundle
        message = DeliveryTask.model_validate(task)
        try:
            self._sqs.send_message(
                QueueUrl=self._queue_url,
                MessageBody=message.model_dump_json(exclude_none=True),
                MessageAttributes={"destination": {"DataType": "String", "StringValue": destination}},
            )
        except (BotoCoreError, ClientError) as exc:
            raise translate(exc, "sqs send_message") from exc
        self.queued.append((destination, message.bundle_id))
