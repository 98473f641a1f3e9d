"""Which connectors poll, how often, and how their schedules are named: one rule for onboarding, the stack
(infra/), `onboard --aws` and `serve`, so a schedule made by one is recognised by the others."""

from __future__ import annotations

import hashlib
import math

from schemas.config import EmailConnector, FeedConnector, HubConfig, StixConnector, TaxiiConnector, parse_duration

DEFAULT_EVERY = {"feed": "15m", "taxii": "5m", "email": "15m", "stix": "15m"}
SCHEDULE_PREFIX = "renkei"
MAX_SCHEDULE_NAME = 64  # EventBridge Scheduler's limit


def polls(connector: object) -> bool:
    """True for connectors that fetch on a schedule: feeds, TAXII pull, mailboxes and bundle URLs with a source."""
    if isinstance(connector, FeedConnector):
        return True
    if isinstance(connector, TaxiiConnector):
        return connector.direction in ("pull", "both")
    if isinstance(connector, EmailConnector):
        return connector.source is not None
    # A bundle folder is read by `ingest` (and `serve`); only one on a web server is polled on AWS.
    return isinstance(connector, StixConnector) and (connector.source or "").startswith(("http://", "https://"))


def polling(config: HubConfig) -> dict[str, str]:
    """Connector id -> `every` as written (or its type's default), for each connector that polls."""
    return {c.id: c.every or DEFAULT_EVERY.get(c.type, "15m") for c in config.connectors if polls(c)}


def rate_expression(every: str) -> str:
    """The EventBridge Scheduler form, e.g. `rate(15 minutes)` (whole minutes at least: its finest unit)."""
    minutes = max(1, math.ceil(parse_duration(every).total_seconds() / 60))
    for size, unit in ((1440, "day"), (60, "hour"), (1, "minute")):
        if minutes % size == 0:
            count = minutes // size
            return f"rate({count} {unit}{'' if count == 1 else 's'})"
    raise AssertionError("unreachable: every count is a whole number of minutes")


def schedule_name(connector_id: str, prefix: str = SCHEDULE_PREFIX) -> str:
    """`renkei-<connector id>`, shortened with a digest when over Scheduler's limit."""
    name = f"{prefix}-{connector_id}"
    if len(name) <= MAX_SCHEDULE_NAME:
        return name
    digest = hashlib.sha256(connector_id.encode()).hexdigest()[:8]
    return f"{name[: MAX_SCHEDULE_NAME - 9]}-{digest}"
