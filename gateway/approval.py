"""One-time approval tokens: mailed to the member, only their sha256 kept with the pending input."""

from __future__ import annotations

import hashlib
import hmac
import secrets

# The state cursor holding the sha256 of the hub operator's token for the approvals endpoint.
OPERATOR_TOKEN_CURSOR = "operator-token"  # noqa: S105 - a name, not a secret


def new_token() -> tuple[str, str]:
    """(token to send, sha256 to keep)."""
    token = secrets.token_urlsafe(24)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def verify_token(token: str, expected_hash: str) -> bool:
    return bool(expected_hash) and hmac.compare_digest(token_hash(token), expected_hash)
