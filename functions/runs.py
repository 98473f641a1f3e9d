"""Run intakes of one connector through the pipeline, with the deliveries queue as its channel."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from connectors.mailout.approval import ApprovalMailer
from functions.observability import logger, record_run
from functions.outbox import SqsOutbox
from functions.wiring import Wiring
from gateway.dedupe import canonical_version
from gateway.errors import PermanentError
from gateway.intake import Intake, sender_of, sender_of_pending, take
from gateway.model import DEFINITION_TYPES, PendingItem, VersionRecord
from gateway.normalize import RENKEI_EXTENSION_ID
from gateway.pipeline import RunResult
from gateway.ports import StateStore
from gateway.senders import UnknownConnector
from gateway.stixjson import InputRefused, load_bundle
from schemas.config import EmailConnector, HubConfig


def run_intakes(
    wiring: Wiring,
    config: HubConfig,
    version: str,
    connector_id: str,
    intakes: Iterable[Intake],
    time_left: Callable[[], bool] = lambda: True,
    requeue: bool = False,
) -> RunResult:
    """Take each intake (raw bytes stored first, by the pipeline) and queue what routing allows.

    With `requeue` (the router, whose failed envelopes come back): an input seen before whose versions were
    claimed but whose delivery tasks were never queued (a run that failed between the two) has those tasks
    queued now, see `requeue_unqueued`. It costs a read of the deliveries of every duplicate, hence not for
    pollers that read the same feed again and again.
    Stops early, between intakes, when `time_left()` turns False; a poller's source resumes from its cursor.
    """
    outbox = SqsOutbox(wiring.sqs, wiring.settings.deliveries_queue_url, wiring.blobs, version)  # type: ignore[arg-type]
    pipeline = wiring.pipeline(config, version, outbox)
    total = RunResult()
    taken = 0
    asker = approval_mailer(wiring, config)
    for intake in intakes:
        outbox.sender(connector_id, intake.member)
        result = take(pipeline, config, connector_id, intake, asker)
        total.merge(result)
        if requeue and result.held_before and intake.refusal is None and intake.approval_token is None:
            requeue_unqueued(wiring, config, version, connector_id, intake, result.held_before, total)
        taken += 1
        if not time_left():
            logger.warning("stopping early: the invocation is running out of time", connector=connector_id, taken=taken)
            break
    summary = record_run(connector_id, total)
    logger.info("run done", extra={"connector": connector_id, "inputs": taken, "config_version": version, **summary})
    return total


def unqueued(
    state: StateStore, held: dict[tuple[str, str], VersionRecord], connector_id: str, org: str
) -> dict[str, tuple[str, set[str]]]:
    """Object id -> (its held version, the destinations that version was routed to but never queued for).

    The pipeline claims a version, queues a task per destination, then records each delivery: a version
    routed by this sender with an allowed destination and no delivery of it (nor of a newer one) there was
    claimed by a run that failed before its task was queued (SQS refused, the worker died, DynamoDB throttled).
    """
    routed = {
        key: r
        for key, r in held.items()
        if r.status == "routed" and r.connector == connector_id and r.sender_org == org
    }
    pairs = {(d, oid) for (oid, _), r in routed.items() for d, (allowed, _) in r.decisions.items() if allowed}
    if not pairs:
        return {}
    delivered = state.delivered(pairs)
    missing: dict[str, tuple[str, set[str]]] = {}
    for (oid, version), record in routed.items():
        for dest, (allowed, _) in record.decisions.items():
            got = delivered.get((dest, oid))
            if allowed and (got is None or (not version.startswith("sha256:") and version > got)):
                missing.setdefault(oid, (version, set()))[1].add(dest)
    return missing


class OnlyUnqueued:
    """A channel that passes on, of each bundle, only the objects not yet queued for its destination."""

    def __init__(self, outbox: SqsOutbox, missing: dict[str, tuple[str, set[str]]]) -> None:
        self._outbox = outbox
        self._missing = missing
        self.requeued: dict[str, int] = {}

    def deliver(self, destination: str, bundle: dict[str, Any]) -> None:
        keep = {oid for oid, (_, dests) in self._missing.items() if destination in dests}

        def wanted(o: dict[str, Any]) -> bool:
            if o.get("type") in DEFINITION_TYPES or RENKEI_EXTENSION_ID not in (o.get("extensions") or {}):
                return True  # support: definitions, the hub's identity
            return o.get("id") in keep or (o.get("type") == "note" and bool(keep & set(o.get("object_refs", []))))

        objects = [o for o in bundle["objects"] if wanted(o)]
        content = [o for o in objects if o.get("id") in keep]
        if not content:
            return  # queued before: the pipeline records the delivery again, a no-op
        self._outbox.deliver(destination, {**bundle, "objects": objects})
        self.requeued[destination] = self.requeued.get(destination, 0) + len(content)


def requeue_unqueued(
    wiring: Wiring,
    config: HubConfig,
    version: str,
    connector_id: str,
    intake: Intake,
    held: dict[tuple[str, str], VersionRecord],
    total: RunResult,
) -> None:
    """Queue the tasks a failed run of this same input claimed but never queued. Counts stay as this run made
    them (those objects are duplicates of the failed run); `total.deliveries` and `undelivered` say what was
    queued now or still could not be."""
    assert wiring.state is not None and wiring.blobs is not None
    sender = sender_of(config, connector_id, intake)
    missing = unqueued(wiring.state, held, connector_id, sender.org)
    if not missing:
        return
    if intake.objects is not None:
        objects = intake.objects
    else:
        try:
            objects = load_bundle(intake.raw)
        except InputRefused:
            return
    # Only the very version claimed before: routing again skips dedupe, so nothing else of the input may pass here
    # (a second version of the same id in the input is left out: it had its own verdict in this run).
    ids = Counter(o.get("id") for o in objects if isinstance(o, dict))
    chosen = [
        o
        for o in objects
        if isinstance(o, dict)
        and (
            o.get("type") in DEFINITION_TYPES
            or (o.get("id") in missing and ids[o.get("id")] == 1 and _claimed(o, missing[o["id"]][0]))
        )
    ]
    if not any(o.get("id") in missing for o in chosen):
        return
    outbox = SqsOutbox(wiring.sqs, wiring.settings.deliveries_queue_url, wiring.blobs, version)
    outbox.sender(connector_id, intake.member)
    channel = OnlyUnqueued(outbox, missing)
    again = RunResult()
    # approved=True: routed again without dedupe and claim, the claim being this sender's own from before
    pipeline = wiring.pipeline(config, version, channel)
    pipeline.route_objects(chosen, sender, intake.name, "", intake.hops, again, approved=True)
    total.deliveries.update(channel.requeued)
    total.undelivered.update(again.undelivered)
    logger.warning(
        "queued again what a failed run claimed",
        extra={"connector": connector_id, "requeued": channel.requeued, "undelivered": dict(again.undelivered)},
    )


def _claimed(obj: dict[str, Any], version: str) -> bool:
    """Whether `obj` is the held `version` (gateway.normalize.version_of; content versions were matched by dedupe)."""
    stamp = obj.get("modified") or obj.get("created")
    return canonical_version(str(stamp)) == version if stamp else version.startswith("sha256:")


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
    assert wiring.blobs is not None
    pipeline = wiring.pipeline(
        config, version, SqsOutbox(wiring.sqs, wiring.settings.deliveries_queue_url, wiring.blobs, version)
    )
    expired = pipeline.expire_pending()
    mailer = approval_mailer(wiring, config)
    for item in expired:
        if item.notify:
            mailer.tell_expired(item, item.notify)
        logger.info("pending input expired", extra={"connector": item.connector, "pending": item.pending_id})
    return expired
