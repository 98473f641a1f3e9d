"""Values the core passes around: who sent an input, the envelope, decisions, version records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.config import Anonymize, Scope
from schemas.tlp import Tlp

StixObject = dict[str, Any]

# Object types that are infrastructure of a bundle, not intelligence: never counted, never routed
# on their own, shipped with the objects that need them (contract rule 10).
DEFINITION_TYPES = frozenset({"marking-definition", "extension-definition"})


@dataclass(frozen=True)
class SenderPolicy:
    """The sender of one input and what it allows, resolved from the connector (and e-mail member)."""

    connector_id: str
    connector_type: str
    org: str
    community: str | None = None
    tlp: Tlp = Tlp.CLEAR
    scope: Scope = field(default_factory=Scope)
    anonymize: Anonymize | None = None
    approval_required: bool = False
    # destinations that are the system this input came from (contract rule 11)
    origin_ids: frozenset[str] = frozenset()
    # the sender's own identifiers (e.g. the reporter's address): redacted like `redact` values
    private_values: tuple[str, ...] = ()
    # where feedback on this input can reach its sender (an e-mail reporter's address); kept sealed
    reply_to: str | None = None


@dataclass
class Envelope:
    """The STIX objects of one input plus who sent it and the hops it has already taken."""

    sender: SenderPolicy
    objects: list[StixObject]
    input_ref: str
    input_name: str
    received: datetime
    hops: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    """Whether one object version may go to one destination, and why (a short machine-readable reason)."""

    allowed: bool
    reason: str

    def __bool__(self) -> bool:  # a Decision reads as its verdict
        return self.allowed


@dataclass
class VersionRecord:
    """What the hub holds about one version of one object: dedupe state and every routing decision."""

    object_id: str
    version: str
    content_hash: str
    tlp: str
    scope: dict[str, Any]
    connector: str
    sender_org: str
    recorded_at: str
    status: str = "routed"  # routed | pending | withheld | quarantined
    decisions: dict[str, tuple[bool, str]] = field(default_factory=dict)
    body: StixObject | None = None  # the object as normalised, so a follow-up can say what changed
    config_version: str = ""


@dataclass
class Delivery:
    """One object version that went to one destination."""

    destination: str
    object_id: str
    version: str


@dataclass
class PendingItem:
    """Objects of one input that wait for the sender's approval."""

    pending_id: str
    connector: str
    sender_org: str
    created: str
    expires: str
    objects: list[StixObject]
    input_name: str
    hops: tuple[str, ...] = ()
    token_hash: str = ""  # sha256 of the one-time approval token mailed to the member
    # What the sender's policy was when held, beyond the config: approval may only make it stricter.
    tlp_floor: str = "CLEAR"  # the effective TLP (a mail subject's TLP included)
    private_values: tuple[str, ...] = ()  # a reported mail's recipients, redacted with `anonymize`
    notify: str = ""  # where the approval request went (the reporter's address), to say when it expires


@dataclass
class QuarantineRecord:
    """An input or object that must not be relayed, its reason, and where its raw bytes are kept."""

    quarantine_id: str
    reason: str
    detail: str
    connector: str
    input_name: str
    raw_ref: str
    recorded_at: str
    object_id: str | None = None
