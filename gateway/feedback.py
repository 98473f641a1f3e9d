"""Give and take: a member's sighting of an object it received goes back to that object's sender, and only there.

Task-force members answer "seen", "not seen" (a sighting with `count: 0`) or "don't know" (a sighting whose
Renkei extension says `answer: unknown`). The answer is relayed as the hub's own sighting, so it names the
community that answered but no member, and it reaches only the sender's own system: the TAXII collection
or peer hub the object came from, or the reporter's address kept in the sealed mapping. Feeds are one-way:
feedback on a feed's advisory has no return path and is refused (kept in quarantine, not dropped).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag

from gateway import quarantine
from gateway.errors import RenkeiError
from gateway.model import Delivery, StixObject, VersionRecord
from gateway.normalize import RENKEI_EXTENSION_DEFINITION, RENKEI_EXTENSION_ID, RENKEI_NAMESPACE
from gateway.ports import BlobStore, StateStore
from gateway.scope import to_json
from gateway.seal import Sealer
from gateway.senders import origin_ids
from gateway.stixjson import ObjectInvalid, check_object
from gateway.tlp import TLP2_EXTENSION_DEFINITION, TLP2_IDS, read_tlp, tlp2_definition
from schemas.config import EmailConnector, HubConfig, Scope
from schemas.tlp import Tlp

ANSWERS = ("seen", "not-seen", "unknown")


@dataclass(frozen=True)
class ReturnPath:
    """Where feedback on one object may go: the sender's own system, or its reporter's address."""

    communities: tuple[str, ...] = ()
    address: str | None = None
    home: str | None = None  # the sender's community: the only one a relayed answer's scope names

    @property
    def label(self) -> str:
        return ",".join(self.communities) if self.communities else "mail"


@dataclass(frozen=True)
class Outcome:
    """What became of one posted object (a TAXII status entry)."""

    object_id: str
    version: str
    ok: bool
    message: str


class FeedbackSender(Protocol):
    def to_community(self, community_id: str, bundle: StixObject) -> None:
        """Deliver through that community's channel. Raises gateway.errors.RenkeiError."""
        ...

    def to_address(self, address: str, bundle: StixObject) -> None:
        """Mail to one reporter. Raises gateway.errors.RenkeiError."""
        ...


def answer_of(sighting: StixObject) -> str:
    stated = ((sighting.get("extensions") or {}).get(RENKEI_EXTENSION_ID) or {}).get("answer")
    if stated in ANSWERS:
        return str(stated)
    return "not-seen" if sighting.get("count") == 0 else "seen"


def return_path(config: HubConfig, record: VersionRecord, state: StateStore, sealer: Sealer | None) -> ReturnPath:
    """The sender's own system for an object the hub holds; empty when it has none (feeds, bundle drops)."""
    connector = config.connector(record.connector)
    if connector is None:
        return ReturnPath()
    home = connector.sender.community if connector.sender else None
    if isinstance(connector, EmailConnector):
        if sealer is None:
            return ReturnPath()
        token = sealer.pseudonym_of(record.connector, record.sender_org)
        sealed = state.get_seal(token)
        try:
            identity = sealer.open(token, sealed) if sealed else {}
        except InvalidTag:
            return ReturnPath()
        return ReturnPath(address=identity.get("reply_to"), home=home)
    known = {c.id for c in config.communities}
    return ReturnPath(communities=tuple(sorted(origin_ids(config, connector) & known)), home=home)


class Feedback:
    def __init__(
        self,
        config: HubConfig,
        state: StateStore,
        blobs: BlobStore,
        send: FeedbackSender,
        hub_identity: StixObject,
        sealer: Sealer | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.state = state
        self.blobs = blobs
        self.send = send
        self.hub_identity = hub_identity
        self.sealer = sealer
        self.clock = clock

    def accept(self, giver: str, objects: list[Any], input_name: str) -> list[Outcome]:
        """Relay each sighting from community `giver` to its object's sender; one outcome per object."""
        return [self._one(giver, obj, input_name) for obj in objects]

    def _one(self, giver: str, obj: Any, input_name: str) -> Outcome:
        try:
            sighting = check_object(obj, self.clock()).obj
        except ObjectInvalid as invalid:
            return self._refuse(giver, obj, input_name, invalid.reason, str(invalid))
        if sighting["type"] != "sighting" or not isinstance(sighting.get("sighting_of_ref"), str):
            return self._refuse(giver, obj, input_name, "feedback:not-a-sighting", "only sightings are accepted here")
        ref = sighting["sighting_of_ref"]
        if not self.state.delivered({(giver, ref)}):
            detail = "a sighting may only be of an object your community received"
            return self._refuse(giver, obj, input_name, "feedback:not-received", detail)
        record = self.state.latest({ref}).get(ref)
        path = return_path(self.config, record, self.state, self.sealer) if record else ReturnPath()
        if record is None or not (path.communities or path.address):
            detail = "the object's sender has no way back (a one-way feed or a bundle drop)"
            return self._refuse(giver, obj, input_name, "feedback:no-return-path", detail)
        relayed = self._relayed(sighting, giver, Tlp.parse(record.tlp), path.home)
        key = f"feedback>{path.label}"
        if self.state.delivered({(key, relayed["id"])}).get((key, relayed["id"])) == relayed["modified"]:
            return Outcome(*_posted(obj), True, "already relayed to the sender")
        try:
            bundle = self._bundle(relayed)
            for community in path.communities:
                self.send.to_community(community, bundle)
            if path.address:
                self.send.to_address(path.address, bundle)
        except RenkeiError as failed:
            return self._refuse(giver, obj, input_name, "feedback:undelivered", f"sender unreachable: {failed}")
        self.state.record_deliveries([Delivery(key, relayed["id"], relayed["modified"])])
        return Outcome(*_posted(obj), True, "relayed to the sender only")

    def _relayed(self, sighting: StixObject, giver: str, object_tlp: Tlp, home: str | None) -> StixObject:
        """The hub's sighting: the answer and its counts and times, no member's identity, at least the object's TLP.

        Its scope names only the sender's community, so a hub it passes through can route it nowhere else.
        """
        level = max(read_tlp(sighting, {}).level, object_tlp)
        kept = ("sighting_of_ref", "count", "first_seen", "last_seen", "summary", "confidence")
        answer_id = uuid.uuid5(RENKEI_NAMESPACE, f"feedback|{giver}|{sighting['id']}")
        out: StixObject = {
            "type": "sighting",
            "spec_version": "2.1",
            # one id per answer of one community, so a member's later answer is a new version of it
            "id": f"sighting--{answer_id}",
            "created": sighting["created"],
            "modified": sighting["modified"],
            "created_by_ref": self.hub_identity["id"],
            **{k: sighting[k] for k in kept if k in sighting},
            "object_marking_refs": [TLP2_IDS[level]],
            "extensions": {
                RENKEI_EXTENSION_ID: {
                    "extension_type": "property-extension",
                    "tlp": level.label,
                    "scope": to_json(Scope(share_with=[home] if home else [])),
                    "hops": [self.config.hub.id],
                    "feedback": {"from": giver, "answer": answer_of(sighting)},
                }
            },
        }
        return out

    def _bundle(self, relayed: StixObject) -> StixObject:
        level = Tlp.parse(relayed["extensions"][RENKEI_EXTENSION_ID]["tlp"])
        support = [tlp2_definition(level), TLP2_EXTENSION_DEFINITION, RENKEI_EXTENSION_DEFINITION, self.hub_identity]
        bundle_id = uuid.uuid5(RENKEI_NAMESPACE, f"feedback|{relayed['id']}@{relayed['modified']}")
        return {"type": "bundle", "id": f"bundle--{bundle_id}", "objects": [*support, relayed]}

    def _refuse(self, giver: str, obj: Any, input_name: str, reason: str, detail: str) -> Outcome:
        """Kept with its bytes and reason, as every refused input is; the status says why."""
        ref, object_id = quarantine.keep_object(self.blobs, obj)
        quarantine.record(self.state, self.clock(), f"feedback:{giver}", input_name, ref, reason, detail, object_id)
        return Outcome(*_posted(obj), False, f"{reason}: {detail}")


def _posted(obj: Any) -> tuple[str, str]:
    """(id, version) of a posted object as its status entry names it, whatever it is."""
    if not isinstance(obj, dict):
        return "", ""
    return str(obj.get("id", "")), str(obj.get("modified", ""))
