"""The `peer` channel: what routing allowed for a peer hub, signed, POSTed to its inbox."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from connectors.peer.signing import sign
from gateway.errors import PermanentError, RetryableError
from schemas.config import Hub, PeerTarget

SIGNATURE_HEADER = "X-Renkei-Signature"
TIMEOUT_SECONDS = 30


def envelope(hub_id: str, bundle: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The signed unit: who sends, when, a nonce (replays are refused), and the bundle with each object's
    scope and hop list in Renkei's extension."""
    sent = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"hub": hub_id, "sent": sent, "nonce": str(uuid.uuid4()), "bundle": bundle}


class PeerChannel:
    def __init__(self, hub: Hub, target: PeerTarget, signing_key_pem: bytes | None = None) -> None:
        self.hub = hub
        self.target = target
        self._key = signing_key_pem

    def deliver(self, destination: str, bundle: dict[str, Any]) -> None:
        key = self._key or _signing_key(self.hub)
        signed = envelope(self.hub.id, bundle)
        body = orjson.dumps(signed)
        request = urllib.request.Request(  # noqa: S310 - the peer's configured http(s) inbox
            self.target.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign(signed, key, self.hub.id)},
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
                response.read(1024)
        except urllib.error.HTTPError as exc:
            if exc.code == 429 or exc.code >= 500:
                raise RetryableError(f"{destination}: peer inbox answered {exc.code}") from None
            raise PermanentError(f"{destination}: peer inbox refused the bundle ({exc.code})") from None
        except (urllib.error.URLError, TimeoutError) as exc:
            raise RetryableError(f"{destination}: peer inbox unreachable ({exc})") from None


def _signing_key(hub: Hub) -> bytes:
    if not hub.signing_key_env or not os.environ.get(hub.signing_key_env):
        raise PermanentError("hub.signing_key_env is not set: peer bundles must be signed")
    return os.environ[hub.signing_key_env].encode()
