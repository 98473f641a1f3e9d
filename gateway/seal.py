"""The sealed mapping: an anonymised sender's pseudonym, and its identity encrypted so only the hub can open it.

Feedback addressed to a pseudonym can still reach the sender; anyone reading state, logs or deliveries
sees only the pseudonym.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.model import SenderPolicy

_NONCE_BYTES = 12


class Sealer:
    """Pseudonyms are an HMAC of the sender under the hub's seal key: stable, unlinkable without the key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the seal key must be at least 32 bytes")
        self._mac_key = hashlib.sha256(b"renkei-pseudonym|" + key).digest()
        self._aead = AESGCM(hashlib.sha256(b"renkei-seal|" + key).digest())

    def pseudonym(self, sender: SenderPolicy) -> str:
        return self.pseudonym_of(sender.connector_id, sender.org)

    def pseudonym_of(self, connector_id: str, org: str) -> str:
        digest = hmac.new(self._mac_key, f"{connector_id}|{org}".encode(), hashlib.sha256)
        return f"anon-{digest.hexdigest()[:24]}"

    def seal(self, sender: SenderPolicy) -> tuple[str, bytes]:
        """(pseudonym, sealed identity): who sent it, and where feedback can reach them."""
        token = self.pseudonym(sender)
        identity = {
            "connector": sender.connector_id, "org": sender.org, "community": sender.community,
            "reply_to": sender.reply_to,
        }  # fmt: skip
        nonce = os.urandom(_NONCE_BYTES)
        return token, nonce + self._aead.encrypt(nonce, orjson.dumps(identity), token.encode())

    def open(self, token: str, sealed: bytes) -> dict[str, str | None]:
        """The sender behind a pseudonym. Raises cryptography.exceptions.InvalidTag if tampered with."""
        nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        identity: dict[str, str | None] = orjson.loads(self._aead.decrypt(nonce, body, token.encode()))
        return identity
