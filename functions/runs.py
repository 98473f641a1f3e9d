"""Run intakes of one connector through the pipeline, with the deliveries queue as its channel."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from connectors.mailout.approval import ApprovalMailer
from functions.observability import logger, record_run
from functions.outbox import SqsOutbox
from functions.wiring import Wiring
from gateway.errors import PermanentError
from gateway.intake import Intake, sender_of_pending, take
from gateway.model import PendingItem
from gateway.pipeline import RunResult
from gateway.senders import UnknownConnector
from schemas.config import EmailConnector, HubConfig


def run_intakes(
    wiring: Wiring,
    config: HubConfig,
    version: str,
    connector_id: str,
    intakes: Iterable[Intake],
    time_left: Callable[[], bool] = lambda: True,
) -> RunResult:
    """Take each intake (raw bytes stored first, by the pipeline) and queue what routing allows.

    Stops early, between intakes, when `time_left()` turns False; a poller's source resumes from its cursor.
    """
    outbox = SqsOutbox(wiring.sqs, wiring.settings.deliveries_queue_url, wiring.blobs, version)  # type: ignore[arg-type]
    pipeline = wiring.pipeline(config, version, outbox)
    total = RunResult()
    taken = 0
    asker = approval_mailer(wiring, config)
    for intake in intakes:
        outbox.sender(connector_id, intake.member)
        total.merge(take(pipeline, config, connector_id, intake, asker))
        taken += 1
        if not time_left():
            logger.warning("stopping early: the invocation is running out of time", connector=connector_id, taken=taken)
            break
    summary = record_run(connector_id, total)
    logger.info("run done", extra={"connector": connector_id, "inputs": taken, "config_version": version, **summary})
    return total


def approve_pending(wiring: Wiring, pending_id: str) -> RunResult | None:
    """Release a pending input into routing (the approvals endpoint). None if unknown or already taken.

    The sender is the connector's, with the e-mail member whose organisation sent it, never looser than when
    it was held (gateway.intake.sender_of_pending).
    """
    config, version = wiring.config()
    assert wiring.state is not None
    item = next((p for p in wiring.state.pending() if p.pending_id == pending_id), None)
    if item is None:
        return None
    try:
        sender = sender_of_pending(config, item)
    except UnknownConnector as gone:
        raise PermanentError(f"pending {pending_id}: its sender is no longer configured ({gone})") from None
    connector = config.connector(item.connector)
    members = connector.members if isinstance(connector, EmailConnector) else []
    member = next((m for m in members if m.org == item.sender_org), None)
    outbox = SqsOutbox(wiring.sqs, wiring.settings.deliveries_queue_url, wiring.blobs, version)  # type: ignore[arg-type]
    outbox.sender(item.connector, member)
    result = wiring.pipeline(config, version, outbox).approve(pending_id, sender)
    if result is not None:
        summary = record_run(item.connector, result)
        logger.info("approved", extra={"connector": item.connector, "pending": pending_id, **summary})
    return result


def approval_mailer(wiring: Wiring, config: HubConfig) -> ApprovalMailer:
    """Asks e-mail members for approval, from the hub's own mailbox address."""
    mailbox = next((c for c in config.connectors if isinstance(c, EmailConnector)), None)
    address = mailbox.address if mailbox is not None else f"renkei@{config.hub.id}.invalid"
    return ApprovalMailer(config.hub, wiring.client("ses"), address)


def expire_pending(wiring: Wiring) -> list[PendingItem]:
    """Drop what waited too long for approval, and tell each member whose report expired (serve, a schedule)."""
    config, version = wiring.config()
    pipeline = wiring.pipeline(
        config, version, SqsOutbox(wiring.sqs, wiring.settings.deliveries_queue_url, wiring.blobs, version)
    )  # type: ignore[arg-type]
    expired = pipeline.expire_pending()
    mailer = approval_mailer(wiring, config)
    for item in expired:
        if item.notify:
            mailer.tell_expired(item, item.notify)
        logger.info("pending input expired", extra={"connector": item.connector, "pending": item.pending_id})
    return expired
