"""The HTTP API behind API Gateway (and `gateway serve`): Renkei's TAXII 2.1 server, the peer inbox, health."""

from __future__ import annotations

import hashlib
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from connectors.aws.collections import CollectionStore
from connectors.peer.inbound import receive
from connectors.taxii_server.server import ServerContext, build_app
from functions import wiring
from functions.api import approvals
from functions.feedback import relay
from functions.observability import logger, metrics, tracer
from functions.runs import run_intakes
from schemas.config import PeerConnector


def _context() -> ServerContext:
    w = wiring.current()
    config, _ = w.config()
    assert w.state is not None
    # Cursors are signed with a key derived from the seal key: forged or altered ones are refused.
    key = hashlib.sha256(b"renkei-taxii-cursor|" + w.seal_key_for(config)).digest()
    context = _contexts.get(w)
    if context is None or context.config is not config:  # keeps the login memo while the config holds
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
    w = wiring.current()
    config, version = w.config()
    body = app.current_event.decoded_body.encode() if isinstance(app.current_event.decoded_body, str) else b""
    headers = dict(app.current_event.headers or {})
    peers = [c for c in config.connectors if isinstance(c, PeerConnector)]
    assert w.state is not None
    intakes = [receive(c, body, headers, w.state) for c in peers]
    # The first peer whose key verifies the envelope is its sender; if none does, it is quarantined once.
    chosen = next(((c, i) for c, i in zip(peers, intakes, strict=True) if i.refusal is None), None)
    if chosen is None and not peers:
        return Response(404, "application/json", '{"title": "no peer connector"}')
    connector, intake = chosen or (peers[0], intakes[0])
    result = run_intakes(w, config, version, connector.id, [intake])
    status = 202 if intake.refusal is None else 400
    logger.info("peer bundle", extra={"connector": connector.id, "accepted": intake.refusal is None})
    return Response(status, "application/json", f'{{"objects": {result.summary()["objects"]}}}')


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)  # never let tracing capture intel payloads
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    answer = app.resolve(event, context)
    # What was asked and answered, never a body or a credential: request bodies and answers are intel.
    logger.info("request", extra={"method": event.get("httpMethod"), "path": event.get("path"),
                                  "status": answer.get("statusCode")})  # fmt: skip
    return answer
