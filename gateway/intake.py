"""What a connector hands the pipeline: one raw input and what the connector made of it.

Connectors (feeds, mail, TAXII, peers, bundle files) differ only in how they read and convert. Each
yields `Intake`s from a `Source`; `take` turns one into a pipeline run, so every connector gets the
same storage of raw bytes, quarantine, policy and counting.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from gateway.approval import verify_token
from gateway.errors import RenkeiError
from gateway.model import PendingItem, SenderPolicy, StixObject
from gateway.senders import UnknownConnector, sender_for
from schemas.config import EmailConnector, HubConfig, MemberRule
from schemas.tlp import Tlp

if TYPE_CHECKING:
    from gateway.pipeline import Pipeline, RunResult


@dataclass(frozen=True)
class Refusal:
    """Why a connector refuses an input before it is STIX: quarantined with its raw bytes."""

    reason: str  # short and machine-readable, e.g. "xml:entities", "mail:dmarc-fail"
    detail: str  # for a person; never the content itself


@dataclass(frozen=True)
class Intake:
    """One raw input, as received, and what its connector made of it.

    Exactly one of three: `objects` (the connector converted the input to STIX), `refusal` (it refused
    it), or neither (the raw bytes are a STIX bundle for the pipeline to read).
    """

    name: str  # where it came from, for traces: a file, a feed item's link, a message id
    raw: bytes
    objects: list[StixObject] | None = None
    refusal: Refusal | None = None
    member: MemberRule | None = None  # e-mail: the member it came from; their choices override the connector's
    tlp: Tlp | None = None  # a TLP stated outside STIX (a mail subject): the stricter of it and the sender's wins
    hops: tuple[str, ...] = ()  # hubs the input has passed through (peer bundles)
    # values that identify people behind this input (a reported mail's recipients): with `anonymize`,
    # redacted like the sender's own `redact` values
    private_values: tuple[str, ...] = ()
    reporter: str | None = None  # who to ask for approval (an e-mail member's address)
    approval_token: str | None = None  # a member's `APPROVE <token>` reply: releases what it holds


class ApprovalAsker(Protocol):
    """Asks a member to approve a held input (connectors.mailout.approval.ApprovalMailer sends the mail)."""

    def ask(self, pending: PendingItem, member_address: str) -> str:
        """Send the request with a one-time token; returns the token's sha256, the only trace kept."""
        ...

    def tell_expired(self, pending: PendingItem, member_address: str) -> None: ...


class Source(Protocol):
    """Reads one connector's inputs. Raises gateway.errors.SourceUnavailable when it cannot read at all."""

    def read(self, location: str | None) -> Iterator[Intake]:
        """The inputs at `location` (a file, folder or URL), or at the connector's configured source if None."""
        ...


def sender_of(config: HubConfig, connector_id: str, intake: Intake) -> SenderPolicy:
    """The policy for one intake: its connector's, the member's overrides, and a stricter stated TLP."""
    sender = sender_for(config, connector_id, intake.member)
    if intake.tlp is not None and intake.tlp > sender.tlp:
        sender = replace(sender, tlp=intake.tlp)
    if intake.private_values:
        sender = replace(sender, private_values=(*sender.private_values, *intake.private_values))
    if intake.reporter:
        sender = replace(sender, reply_to=intake.reporter)
    return sender


def sender_of_pending(config: HubConfig, item: PendingItem) -> SenderPolicy:
    """The policy for releasing a pending input: the config in force now, never looser than when it was held.

    Raises gateway.senders.UnknownConnector when its connector is no longer configured.
    """
    connector = config.connector(item.connector)
    member = None
    if isinstance(connector, EmailConnector):
        member = next((m for m in connector.members if m.org == item.sender_org), None)
        connector_org = connector.sender.org if connector.sender else connector.id
        if member is None and item.sender_org != connector_org:
            # Released under the connector's own choices, a member's input could lose its anonymity.
            raise UnknownConnector(f"{item.connector}: member {item.sender_org!r} is no longer configured")
    held = Intake(
        item.input_name, b"", member=member, tlp=Tlp.parse(item.tlp_floor), private_values=item.private_values
    )
    return sender_of(config, item.connector, held)


def take(
    pipeline: Pipeline, config: HubConfig, connector_id: str, intake: Intake, asker: ApprovalAsker | None = None
) -> RunResult:
    """Run one intake through the pipeline; with `asker`, the reporter is asked to approve what is held."""
    sender = sender_of(config, connector_id, intake)
    if intake.refusal is not None:
        return pipeline.quarantine_input(intake.raw, sender, intake.name, intake.refusal.reason, intake.refusal.detail)
    if intake.approval_token is not None:
        return _release(pipeline, config, connector_id, intake, sender)
    if intake.objects is None:
        result = pipeline.ingest(intake.raw, sender, intake.name, intake.hops)
    else:
        result = pipeline.ingest_objects(intake.objects, sender, intake.name, intake.raw, intake.hops)
    if asker is not None and intake.reporter:
        for item in result.pending:
            try:
                asked = replace(item, token_hash=asker.ask(item, intake.reporter), notify=intake.reporter)
            except RenkeiError:
                # The report stays held (nothing is lost); an operator can still release it with `approve`.
                result.unasked.append(item.pending_id)
                continue
            pipeline.state.put_pending(asked)
    return result


def _release(
    pipeline: Pipeline, config: HubConfig, connector_id: str, intake: Intake, sender: SenderPolicy
) -> RunResult:
    """An `APPROVE <token>` reply from a member: release what it holds under that token, else quarantine it."""
    token = intake.approval_token or ""
    for item in pipeline.state.pending():
        mine = item.connector == connector_id and item.sender_org == sender.org
        if mine and verify_token(token, item.token_hash):
            released = pipeline.approve(item.pending_id, sender_of_pending(config, item))  # one winner: taken once
            if released is not None:
                return released
    detail = "no input of this member waits under that token (used already, expired, or wrong)"
    return pipeline.quarantine_input(intake.raw, sender, intake.name, "approval:unknown-token", detail)
