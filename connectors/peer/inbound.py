"""A peer hub's signed envelope, checked before anything is believed: the signature with the peer's registered
key, the time window, and the nonce (a replay is refused). The objects then go to the pipeline with the hop
list they carry, where loops die and the carried scope narrows the connector's."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from connectors.peer.outbound import SIGNATURE_HEADER
from connectors.peer.signing import BadSignature, verify
from gateway.intake import Intake, Refusal
from gateway.ports import StateStore
from schemas.config import PeerConnector

MAX_AGE = timedelta(hours=1)
MAX_SKEW = timedelta(minutes=5)
MAX_BODY_BYTES = 20 * 1024 * 1024


def receive(
    connector: PeerConnector,
    body: bytes,
    headers: Mapping[str, str],
    state: StateStore,
    now: datetime | None = None,
    name: str = "peer-inbox",
) -> Intake:
    """One POSTed envelope as an intake: its objects, or a refusal with the reason. Never raises for bad input."""
    now = now or datetime.now(UTC)
    if len(body) > MAX_BODY_BYTES:
        return _refused(name, body, "peer:too-large", f"over {MAX_BODY_BYTES} bytes")
    signature = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower()), None)
    if not signature:
        return _refused(name, body, "peer:unsigned", f"no {SIGNATURE_HEADER} header")
    public_key = os.environ.get(connector.public_key_env, "").encode()
    if not public_key:
        return _refused(name, body, "peer:no-key", f"{connector.public_key_env} is not set")
    try:
        envelope = verify(body, signature, public_key)
    except BadSignature as bad:
        return _refused(name, body, "peer:bad-signature", str(bad))
    bundle = envelope.get("bundle")
    nonce, sent = envelope.get("nonce"), envelope.get("sent")
    if not isinstance(bundle, dict) or not isinstance(bundle.get("objects"), list) or not isinstance(nonce, str):
        return _refused(name, body, "peer:malformed", "the envelope lacks a bundle or a nonce")
    try:
        sent_at = datetime.fromisoformat(str(sent).replace("Z", "+00:00"))
    except ValueError:
        return _refused(name, body, "peer:malformed", "the envelope's time is unreadable")
    if sent_at > now + MAX_SKEW or sent_at < now - MAX_AGE:
        return _refused(name, body, "peer:stale", "sent outside the accepted time window")
    seen = f"peer-nonce:{connector.id}:{nonce}"
    if state.get_cursor(seen) is not None:
        return _refused(name, body, "peer:replay", "this envelope was received before")
    state.put_cursor(seen, {"sent": sent})
    objects = [o for o in bundle["objects"] if isinstance(o, dict)]
    # The objects carry their own hop lists; the sending hub is on them, and on the envelope's for those without.
    return Intake(f"{name}:{nonce}", body, objects=objects, hops=(str(envelope.get("hub") or connector.id),))


def _refused(name: str, body: bytes, reason: str, detail: str) -> Intake:
    return Intake(name, body, refusal=Refusal(reason, detail))
