"""Helpers on the Lambda context that every handler uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Keep this much of the invocation for saving cursors, flushing metrics and answering.
RESERVE_MS = 15_000


def time_left(context: Any, reserve_ms: int = RESERVE_MS) -> Callable[[], bool]:
    """A check that is True while the invocation has more than `reserve_ms` left (always True without a context)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return lambda: True
    return lambda: remaining() > reserve_ms
