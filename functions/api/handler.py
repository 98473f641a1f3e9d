"""The HTTP API behind API Gateway (and `gateway serve`): Renkei's TAXII 2.1 server, the peer inbox, health."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace
from typing import Any

import orjson
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from connectors.aws.collections import CollectionStore
from connectors.peer.inbound import receive
from connectors.taxii_server.server import ServerContext, build_app
from functions import wiring
from functions.api import approvals
from functions.feedback import relay
from functions.messages import EnvelopeMessage
from functions.observability import logger, metrics, tracer
from functions.runs import run_intakes
from gateway.intake import Refusal
from schemas.config import PeerConnector


def _context() -> ServerContext:
    w = wiring.current()
    config, _ = w.config()
    assert w.state is not None
    context = _contexts.get(w)
    if context is None or context.config is not config:  # keeps the login memo while the config holds
        # Cursors are signed with a key derived from the seal key: forged or altered ones are refused.
        key = hashlib.sha256(b"renkei-taxii-cursor|" + w.seal_key_for(config)).digest()
        context = ServerContext(
            config, CollectionStore(w.settings.objects_table, w.dynamodb), key, w.state, w.blobs,
            lambda giver, objects, name: relay(w, giver, objects, name),
        )  # fmt: skip
        _contexts[w] = context
    return context


_contexts: dict[wiring.Wiring, ServerContext] = {}


app = build_app(_context)
approvals.register(app)


@app.post("/peer/inbox")
def peer_inbox() -> Response:
    """Verify a peer's signed envelope here; route its bundle in the router, which retries until it is queued.

    The nonce is spent once verified, so the peer cannot send the same envelope again: from then on nothing may be
    lost. The signed envelope and its bundle are stored, and the bundle queued as an envelope for the router (a
    failed run there comes back and queues what it could not). Refused envelopes are quarantined at once.
    """
    w = wiring.current()
    config, version = w.config()
    body = app.current_event.decoded_body.encode() if isinstance(app.current_event.decoded_body, str) else b""
    headers = dict(app.current_event.headers or {})
    peers = [c for c in config.connectors if isinstance(c, PeerConnector)]
    assert w.state is not None and w.blobs is not None
    if not peers:
        return Response(404, "application/json", '{"title": "no peer connector"}')
    intakes = [receive(c, body, headers, w.state) for c in peers]
    # The first peer whose key verifies the envelope is its sender; if none does, it is quarantined once.
    chosen = next(((c, i) for c, i in zip(peers, intakes, strict=True) if i.refusal is None), None)
    if chosen is None:
        result = run_intakes(w, config, version, peers[0].id, [intakes[0]])
        logger.info("peer bundle refused", extra={"connector": peers[0].id, "quarantined": len(result.quarantined)})
        return Response(400, "application/json", orjson.dumps({"refused": intakes[0].refusal.reason}).decode())  # type: ignore[union-attr]
    connector, intake = chosen
    digest = hashlib.sha256(body).hexdigest()
    w.blobs.put(f"raw/peer/{digest}.jws", body)  # the envelope as signed: evidence, and replayable
    bundle = {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": intake.objects or []}
    raw_ref = w.blobs.put(f"raw/peer/{digest}.json", orjson.dumps(bundle))
    message = EnvelopeMessage(connector=connector.id, raw_ref=raw_ref, name=intake.name[:1024], hops=intake.hops)
    try:
        w.sqs.send_message(QueueUrl=w.settings.envelopes_queue_url, MessageBody=message.model_dump_json())
    except (BotoCoreError, ClientError):
        # Verified and stored but not queued: quarantined with its bytes, so an operator can replay it.
        run_intakes(w, config, version, connector.id, [replace(intake, refusal=Refusal(
            "peer:not-queued", "verified, but the router's queue refused it; replay it from quarantine"))])  # fmt: skip
        return Response(503, "application/json", '{"title": "try again later"}')
    logger.info("peer bundle queued", extra={"connector": connector.id, "objects": len(bundle["objects"])})
    return Response(202, "application/json", orjson.dumps({"queued": len(bundle["objects"])}).decode())


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)  # never let tracing capture intel payloads
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    answer = app.resolve(event, context)
    # What was asked and answered, never a body or a credential: request bodies and answers are intel.
    logger.info("request", extra={"method": event.get("httpMethod"), "path": event.get("path"),
                                  "status": answer.get("statusCode")})  # fmt: skip
    return answer
