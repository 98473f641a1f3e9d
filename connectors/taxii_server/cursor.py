"""Opaque `next` cursors: the position in the by-date-added index, signed so a client cannot forge one."""

from __future__ import annotations

import base64
import hashlib
import hmac


class CursorForged(ValueError):
    pass


def encode(position: str, key: bytes) -> str:
    raw = position.encode()
    mac = hmac.new(key, raw, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac + raw).decode().rstrip("=")


def decode(cursor: str, key: bytes) -> str:
    try:
        data = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except ValueError:
        raise CursorForged("not a cursor") from None
    mac, raw = data[:16], data[16:]
    if len(mac) < 16 or not hmac.compare_digest(mac, hmac.new(key, raw, hashlib.sha256).digest()[:16]):
        raise CursorForged("the cursor was not issued by this hub")
    return raw.decode("utf-8", errors="strict")
