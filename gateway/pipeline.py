"""The pipeline: one input in, every object delivered, withheld, pending, quarantined or a duplicate.

    raw bytes -> store raw -> read (caps, I-JSON) -> check each object -> anonymise -> normalise
    -> dedupe -> [pending] -> route (rules 2-8, 11) -> references (rule 9) -> claim -> deliver

Every object of an input is counted exactly once, so
`objects = delivered + withheld + pending + quarantined + duplicate` holds for every run.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway import quarantine
from gateway.anonymize import Redactor, anonymize
from gateway.changes import change_note, diff
from gateway.dedupe import Verdict, canonical_version, classify
from gateway.errors import PartialDelivery, RenkeiError
from gateway.model import (
    DEFINITION_TYPES,
    Decision,
    Delivery,
    PendingItem,
    QuarantineRecord,
    SenderPolicy,
    StixObject,
    VersionRecord,
)
from gateway.normalize import (
    RENKEI_EXTENSION_DEFINITION,
    RENKEI_EXTENSION_ID,
    RENKEI_NAMESPACE,
    CarriedInvalid,
    Normalized,
    normalize,
    with_source,
    with_tlp1,
)
from gateway.ports import BlobStore, Channel, StateStore
from gateway.route import HubView, decide, decision_key
from gateway.scope import to_json as scope_json
from gateway.seal import Sealer
from gateway.stixjson import InputRefused, ObjectInvalid, check_object, content_refs, load_bundle
from gateway.tlp import TLP2_EXTENSION_DEFINITION, TLP2_EXTENSION_ID, tlp1_definition, tlp2_definition
from schemas.config import Community, HubConfig, parse_duration
from schemas.tlp import Tlp

COUNT_KEYS = ("objects", "delivered", "withheld", "pending", "quarantined", "duplicate")


@dataclass(frozen=True)
class DecisionLine:
    """One line of decisions.jsonl: one object version, one destination."""

    object: str
    version: str
    destination: str
    allowed: bool
    reason: str


@dataclass
class RunResult:
    """What happened to the objects of one run (one or more inputs)."""

    counts: Counter[str] = field(default_factory=Counter)
    deliveries: Counter[str] = field(default_factory=Counter)
    decisions: list[DecisionLine] = field(default_factory=list)
    bundles: dict[str, list[StixObject]] = field(default_factory=dict)
    quarantined: list[QuarantineRecord] = field(default_factory=list)
    pending: list[PendingItem] = field(default_factory=list)
    followups: list[dict[str, str]] = field(default_factory=list)
    undelivered: Counter[str] = field(default_factory=Counter)
    unasked: list[str] = field(default_factory=list)  # pending inputs whose approval request could not be sent
    # (id, version) -> record, for the objects dedupe found already held with the same content: an input seen
    # before. A caller retrying a failed run uses it to queue what that run claimed but never queued.
    held_before: dict[tuple[str, str], VersionRecord] = field(default_factory=dict)

    def merge(self, other: RunResult) -> None:
        self.counts.update(other.counts)
        self.deliveries.update(other.deliveries)
        self.decisions += other.decisions
        for dest, bundles in other.bundles.items():
            self.bundles.setdefault(dest, []).extend(bundles)
        self.quarantined += other.quarantined
        self.pending += other.pending
        self.followups += other.followups
        self.undelivered.update(other.undelivered)
        self.unasked += other.unasked
        self.held_before.update(other.held_before)

    def summary(self) -> dict[str, Any]:
        """The run summary of the contract; `undelivered` only when a channel failed."""
        out: dict[str, Any] = {key: self.counts.get(key, 0) for key in COUNT_KEYS}
        out["deliveries"] = dict(sorted(self.deliveries.items()))
        if self.undelivered:
            out["undelivered"] = dict(sorted(self.undelivered.items()))
        return out


@dataclass
class _Item:
    """One content object on its way through the pipeline."""

    index: int
    original: StixObject
    refs: list[str]
    stamp: str  # the version as the object states it (modified or created), for people
    norm: Normalized | None = None
    version: str = ""
    verdict: Verdict | None = None
    decisions: dict[str, Decision] = field(default_factory=dict)
    withheld_reason: str | None = None  # withheld everywhere before routing (anonymisation)


class Pipeline:
    """Routes inputs of any connector. Stateless between calls: everything durable is in the ports."""

    def __init__(
        self,
        config: HubConfig,
        state: StateStore,
        blobs: BlobStore,
        channel: Channel,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        seal_key: bytes = b"",
        config_version: str = "",
    ) -> None:
        self.config = config
        self.state = state
        self.blobs = blobs
        self.channel = channel
        self.clock = clock
        self.sealer = Sealer(seal_key) if seal_key else None
        self.config_version = config_version
        self.hub = HubView(config.hub.id, config.local_ids)
        self.hub_identity = hub_identity(config)

    # --- entry points ------------------------------------------------------------------------------

    def ingest(self, raw: bytes, sender: SenderPolicy, input_name: str, hops: tuple[str, ...] = ()) -> RunResult:
        """One raw input (a STIX bundle). The raw bytes are stored before anything else happens."""
        result = RunResult()
        raw_ref = self._store_raw(raw)
        try:
            objects = load_bundle(raw)
        except InputRefused as refused:
            self._quarantine_input(result, sender, input_name, raw_ref, refused.reason, str(refused))
            return result
        self.route_objects(objects, sender, input_name, raw_ref, hops, result)
        return result

    def ingest_objects(
        self,
        objects: list[Any],
        sender: SenderPolicy,
        input_name: str,
        raw: bytes,
        hops: tuple[str, ...] = (),
    ) -> RunResult:
        """Objects a connector made from its input (a feed, a mail); `raw` is the input as received."""
        result = RunResult()
        raw_ref = self._store_raw(raw)
        if not objects:
            self._quarantine_input(result, sender, input_name, raw_ref, "input:no-objects", "no STIX object in input")
            return result
        self.route_objects(objects, sender, input_name, raw_ref, hops, result)
        return result

    def quarantine_input(
        self, raw: bytes, sender: SenderPolicy, input_name: str, reason: str, detail: str
    ) -> RunResult:
        """For connectors that refuse an input before it is STIX (bad XML, spoofed mail...)."""
        result = RunResult()
        self._quarantine_input(result, sender, input_name, self._store_raw(raw), reason, detail)
        return result

    def approve(self, pending_id: str, sender: SenderPolicy) -> RunResult | None:
        """Release a pending input into routing. None if unknown or already taken."""
        item = self.state.take_pending(pending_id)
        if item is None:
            return None
        result = RunResult()
        self.route_objects(item.objects, sender, item.input_name, pending_id, item.hops, result, approved=True)
        return result

    def expire_pending(self) -> list[PendingItem]:
        """Remove pending inputs past their expiry; their versions are marked expired. Returns them."""
        now = _stamp(self.clock())
        expired = []
        for item in self.state.pending():
            if item.expires <= now and self.state.take_pending(item.pending_id) is not None:
                expired.append(item)
        return expired

    # --- the run -----------------------------------------------------------------------------------

    def route_objects(
        self,
        objects: list[Any],
        sender: SenderPolicy,
        input_name: str,
        raw_ref: str,
        hops: tuple[str, ...],
        result: RunResult,
        approved: bool = False,
    ) -> None:
        now = self.clock()
        definitions = {
            o["id"]: o
            for o in objects
            if isinstance(o, dict) and o.get("type") in DEFINITION_TYPES and isinstance(o.get("id"), str)
        }
        items = self._check(objects, sender, input_name, now, result)
        if sender.anonymize is not None:
            self._anonymize(items, sender)
        self._normalize(items, definitions, sender, hops, input_name, result)
        if not approved:
            self._dedupe(items, sender, input_name, result)
        fresh = [i for i in items if i.norm is not None and (approved or (i.verdict and i.verdict.routable))]
        if not fresh:
            return
        if sender.approval_required and not approved:
            self._hold(fresh, objects, sender, input_name, hops, now, result)
            return
        self._route(fresh, sender)
        in_input = {o["id"] for o in objects if isinstance(o, dict) and isinstance(o.get("id"), str)}
        self._apply_references(fresh, in_input)
        records = self._records(fresh, sender, now, status="routed")
        if approved:
            self.state.update_versions(records)
            won = fresh
        else:
            lost = {(r.object_id, r.version) for r in self.state.claim_versions(records)}
            won = [i for i in fresh if (i.original["id"], i.version) not in lost]
            result.counts["duplicate"] += len(fresh) - len(won)
        self._count_and_log(won, result)
        self._deliver(won, definitions, sender, now, result)

    def _check(
        self, objects: list[Any], sender: SenderPolicy, input_name: str, now: datetime, result: RunResult
    ) -> list[_Item]:
        items = []
        for index, obj in enumerate(objects):
            if isinstance(obj, dict) and obj.get("type") in DEFINITION_TYPES:
                continue  # not counted; shipped with the objects that need them
            result.counts["objects"] += 1
            try:
                checked = check_object(obj, now)
            except ObjectInvalid as invalid:
                self._quarantine_object(result, sender, input_name, obj, invalid.reason, str(invalid))
                continue
            stamp = str(obj.get("modified") or obj.get("created") or "")
            items.append(_Item(index, checked.obj, checked.content_refs, stamp))
        return items

    def _anonymize(self, items: list[_Item], sender: SenderPolicy) -> None:
        assert sender.anonymize is not None
        values = [*sender.anonymize.redact, sender.org, *sender.private_values]
        outcome = anonymize([i.original for i in items], Redactor(values), self.hub_identity["id"], [sender.org])
        for item, clean in zip(items, outcome.objects, strict=True):
            if clean is None:
                item.withheld_reason = outcome.withheld.get(item.original["id"], "anonymize:withheld")
            else:
                item.original = clean
                item.refs = content_refs(clean)  # references to private objects were dropped

    def _normalize(
        self,
        items: list[_Item],
        definitions: dict[str, StixObject],
        sender: SenderPolicy,
        hops: tuple[str, ...],
        input_name: str,
        result: RunResult,
    ) -> None:
        source = self._source(sender)
        sender_scope = scope_json(sender.scope)
        for item in items:
            try:
                item.norm = normalize(item.original, definitions, sender, self.hub.hub_id, hops, sender_scope)
                orjson.dumps(item.norm.obj)  # lone surrogates and the like fail here, not at delivery
            except (CarriedInvalid, orjson.JSONEncodeError, TypeError) as exc:
                reason = "renkei:invalid-extension" if isinstance(exc, CarriedInvalid) else "json:not-serialisable"
                self._quarantine_object(result, sender, input_name, item.original, reason, str(exc))
                item.norm = None
                continue
            item.version = canonical_version(item.norm.version)
            with_source(item.norm.obj, source)

    def _dedupe(self, items: list[_Item], sender: SenderPolicy, input_name: str, result: RunResult) -> None:
        live = [i for i in items if i.norm is not None]
        ids = {i.original["id"] for i in live}
        latest = self.state.latest(ids)
        same = self.state.versions({(i.original["id"], i.version) for i in live})
        seen_in_run: dict[tuple[str, str], str] = {}
        for item in live:
            assert item.norm is not None
            key = (item.original["id"], item.version)
            if key in seen_in_run:  # the same version twice in one input
                dup = seen_in_run[key] == item.norm.content_hash
                item.verdict = Verdict.DUPLICATE if dup else Verdict.CONFLICT
            else:
                item.verdict = classify(
                    item.version,
                    item.norm.content_hash,
                    item.norm.routable,
                    sender,
                    latest.get(key[0]),
                    same.get(key),
                )
                seen_in_run[key] = item.norm.content_hash
            if item.verdict in (Verdict.DUPLICATE, Verdict.STALE):
                result.counts["duplicate"] += 1
                if item.verdict is Verdict.DUPLICATE and key in same:
                    result.held_before[key] = same[key]
            elif item.verdict.quarantined:
                detail = (
                    "same id and version as one already held, with different content"
                    if item.verdict is Verdict.CONFLICT
                    else "a later version with a weaker TLP or wider scope, from another connector or sender"
                )
                self._quarantine_object(result, sender, input_name, item.original, item.verdict.value, detail)

    def _hold(
        self,
        items: list[_Item],
        objects: list[Any],
        sender: SenderPolicy,
        input_name: str,
        hops: tuple[str, ...],
        now: datetime,
        result: RunResult,
    ) -> None:
        """Approval required: the objects wait, and their versions are claimed so a resend is a duplicate."""
        records = self._records(items, sender, now, status="pending")
        lost = {(r.object_id, r.version) for r in self.state.claim_versions(records)}
        held = [i for i in items if (i.original["id"], i.version) not in lost]
        result.counts["duplicate"] += len(items) - len(held)
        if not held:
            return
        held_ids = {i.index for i in held}
        definitions = [o for o in objects if isinstance(o, dict) and o.get("type") in DEFINITION_TYPES]
        expires = now + parse_duration(self.config.hub.approval_expires_after)
        pending = PendingItem(
            pending_id=f"pending--{uuid.uuid4()}",
            connector=sender.connector_id,
            sender_org=sender.org,
            created=_stamp(now),
            expires=_stamp(expires),
            objects=[*definitions, *(objects[i] for i in sorted(held_ids))],
            input_name=input_name,
            hops=hops,
            tlp_floor=sender.tlp.label,
            private_values=sender.private_values,
        )
        self.state.put_pending(pending)
        result.pending.append(pending)
        result.counts["pending"] += len(held)

    def _route(self, items: list[_Item], sender: SenderPolicy) -> None:
        # Objects with the same routing-relevant properties get the same decision: decide once per class.
        cache: dict[tuple[Any, ...], Decision] = {}
        sender_scope_key = orjson.dumps(scope_json(sender.scope))
        for item in items:
            assert item.norm is not None
            routable = item.norm.routable
            if item.withheld_reason is not None:
                item.decisions = {d.id: Decision(False, item.withheld_reason) for d in self.config.communities}
                continue
            scope_key = sender_scope_key if routable.scope is sender.scope else orjson.dumps(scope_json(routable.scope))
            key = decision_key(routable, scope_key)
            for dest in self.config.communities:
                decision = cache.get((dest.id, *key)) if key is not None else None
                if decision is None:
                    decision = decide(routable, sender, dest, self.hub)
                    if key is not None:
                        cache[(dest.id, *key)] = decision
                item.decisions[dest.id] = decision

    def _apply_references(self, items: list[_Item], in_input: set[str]) -> None:
        """Rule 9: a container is withheld from d when something it references was withheld from d.

        Decided to a fixed point, since containers can reference containers. References to objects the
        hub has never seen do not count; for objects seen in earlier runs, their recorded decision counts;
        an object of this very input that is not being routed (quarantined, say) counts as withheld.
        """
        in_run = {i.original["id"]: i for i in items}
        external = {r for i in items for r in i.refs if r not in in_run}
        held = self.state.latest(external) if external else {}
        for unrouted in (external & in_input) - held.keys():
            held[unrouted] = _NEVER_DELIVERED
        changed = True
        while changed:
            changed = False
            for item in items:
                for dest_id, decision in item.decisions.items():
                    if decision.allowed and any(self._ref_withheld(r, dest_id, in_run, held) for r in item.refs):
                        item.decisions[dest_id] = Decision(False, "ref:referenced-object-withheld")
                        changed = True

    @staticmethod
    def _ref_withheld(ref: str, dest_id: str, in_run: dict[str, _Item], held: dict[str, VersionRecord]) -> bool:
        if ref in in_run:
            decision = in_run[ref].decisions.get(dest_id)
            return decision is None or not decision.allowed
        record = held.get(ref)
        if record is None:
            return False  # never seen: does not count
        allowed, _ = record.decisions.get(dest_id, (False, ""))
        return not allowed

    def _records(self, items: list[_Item], sender: SenderPolicy, now: datetime, status: str) -> list[VersionRecord]:
        recorded_at = _stamp(now)
        records = []
        for item in items:
            assert item.norm is not None
            records.append(
                VersionRecord(
                    object_id=item.original["id"],
                    version=item.version,
                    content_hash=item.norm.content_hash,
                    tlp=item.norm.routable.tlp.label,
                    scope=item.norm.obj["extensions"][RENKEI_EXTENSION_ID]["scope"],
                    connector=sender.connector_id,
                    sender_org=sender.org,
                    recorded_at=recorded_at,
                    status=status,
                    decisions={d: (v.allowed, v.reason) for d, v in item.decisions.items()},
                    body=item.norm.obj if status == "routed" else None,
                    config_version=self.config_version,
                )
            )
        return records

    def _count_and_log(self, items: list[_Item], result: RunResult) -> None:
        for item in items:
            delivered = any(d.allowed for d in item.decisions.values())
            result.counts["delivered" if delivered else "withheld"] += 1
            for dest_id, decision in item.decisions.items():
                result.decisions.append(
                    DecisionLine(
                        item.original["id"],
                        item.stamp or item.version,
                        dest_id,
                        decision.allowed,
                        decision.reason,
                    )
                )

    # --- delivery ----------------------------------------------------------------------------------

    def _deliver(
        self,
        items: list[_Item],
        definitions: dict[str, StixObject],
        sender: SenderPolicy,
        now: datetime,
        result: RunResult,
    ) -> None:
        pairs = {(dest, i.original["id"]) for i in items for dest, d in i.decisions.items() if d.allowed}
        previously = self.state.delivered(pairs)
        bodies = self.state.versions({(oid, v) for (_, oid), v in previously.items()})
        for dest in self.config.communities:
            chosen = [i for i in items if i.decisions[dest.id].allowed]
            if not chosen:
                continue
            notes = self._followups(chosen, dest, previously, bodies, now, result)
            bundle = self._bundle(dest, chosen, notes, definitions)
            try:
                self.channel.deliver(dest.id, bundle)
            except PartialDelivery as partial:
                # What arrived counts as delivered and is never resent; the rest is reported undelivered.
                result.undelivered[dest.id] += sum(1 for i in chosen if i.original["id"] in partial.failed)
                chosen = [i for i in chosen if i.original["id"] not in partial.failed]
                if not chosen:
                    continue
            except RenkeiError:
                result.undelivered[dest.id] += len(chosen)
                continue
            deliveries = [Delivery(dest.id, i.original["id"], i.version) for i in chosen]
            self.state.record_deliveries(deliveries)
            result.deliveries[dest.id] += len(chosen)
            result.bundles.setdefault(dest.id, []).append(bundle)

    def _followups(
        self,
        chosen: list[_Item],
        dest: Community,
        previously: dict[tuple[str, str], str],
        bodies: dict[tuple[str, str], VersionRecord],
        now: datetime,
        result: RunResult,
    ) -> list[StixObject]:
        """A change note for each object of which this destination already received an earlier version."""
        notes = []
        accepts_notes = dest.accepts.types is None or "note" in dest.accepts.types
        for item in chosen:
            assert item.norm is not None
            old_version = previously.get((dest.id, item.original["id"]))
            if old_version is None or old_version == item.version:
                continue
            record = bodies.get((item.original["id"], old_version))
            if record is None or record.body is None:
                continue
            changes = diff(record.body, item.norm.obj)
            shown = (str(record.body.get("modified", old_version)), item.stamp or item.version)
            note = change_note(item.norm.obj, shown, changes, self.hub_identity["id"], _stamp(now))
            result.followups.append({"object": item.original["id"], "destination": dest.id, "summary": note["content"]})
            if accepts_notes:
                notes.append(note)
        return notes

    def _bundle(
        self,
        dest: Community,
        chosen: list[_Item],
        notes: list[StixObject],
        definitions: dict[str, StixObject],
    ) -> StixObject:
        """The bundle exactly as `dest` receives it: objects, their notes, and every definition they need."""
        legacy = "1.0" in dest.tlp_ids
        objects: list[StixObject] = []
        levels: set[Tlp] = set()
        statement_refs: set[str] = set()
        for item in chosen:
            assert item.norm is not None
            level = item.norm.routable.tlp
            levels.add(level)
            statement_refs.update(item.norm.statement_markings)
            objects.append(with_tlp1(item.norm.obj, level) if legacy else item.norm.obj)
        objects += [
            with_tlp1(n, Tlp.parse(n["extensions"][RENKEI_EXTENSION_ID]["tlp"])) if legacy else n for n in notes
        ]
        support: list[StixObject] = [tlp2_definition(level) for level in sorted(levels)]
        if legacy:
            support += [tlp1_definition(level) for level in sorted(levels)]
            support = list({o["id"]: o for o in support}.values())
        support += [definitions[r] for r in sorted(statement_refs) if r in definitions]
        support += [TLP2_EXTENSION_DEFINITION, RENKEI_EXTENSION_DEFINITION]
        support += _other_extension_definitions(objects, definitions)
        if notes or any(o.get("created_by_ref") == self.hub_identity["id"] for o in objects):
            support.append(self.hub_identity)
        content = [*support, *objects]
        bundle_id = uuid.uuid5(
            RENKEI_NAMESPACE, dest.id + "|" + "|".join(f"{o['id']}@{o.get('modified', '')}" for o in objects)
        )
        return {"type": "bundle", "id": f"bundle--{bundle_id}", "objects": content}

    # --- bookkeeping -------------------------------------------------------------------------------

    def _source(self, sender: SenderPolicy) -> dict[str, str]:
        """Recipients see the source, or only a sealed pseudonym when the sender is anonymised."""
        if sender.anonymize is None:
            source = {"org": sender.org, "connector": sender.connector_id}
            if sender.community:
                source["community"] = sender.community
            if sender.reply_to and self.sealer is not None:  # feedback's way back to a reporter, kept sealed
                self.state.put_seal(*self.sealer.seal(sender))
            return source
        if self.sealer is None:
            return {"pseudonym": "anonymous"}
        token, sealed = self.sealer.seal(sender)
        self.state.put_seal(token, sealed)
        return {"pseudonym": token}

    def _store_raw(self, raw: bytes) -> str:
        digest = hashlib.sha256(raw).hexdigest()
        return self.blobs.put(f"raw/{self.clock():%Y/%m/%d}/{digest}", raw)

    def _quarantine_input(
        self, result: RunResult, sender: SenderPolicy, input_name: str, raw_ref: str, reason: str, detail: str
    ) -> None:
        """An input that yields no object at all counts as one quarantined object."""
        result.counts["objects"] += 1
        result.counts["quarantined"] += 1
        self._record_quarantine(result, sender, input_name, raw_ref, reason, detail, None)

    def _quarantine_object(
        self, result: RunResult, sender: SenderPolicy, input_name: str, obj: Any, reason: str, detail: str
    ) -> None:
        result.counts["quarantined"] += 1
        ref, object_id = quarantine.keep_object(self.blobs, obj)
        self._record_quarantine(result, sender, input_name, ref, reason, detail, object_id)

    def _record_quarantine(
        self,
        result: RunResult,
        sender: SenderPolicy,
        input_name: str,
        raw_ref: str,
        reason: str,
        detail: str,
        object_id: str | None,
    ) -> None:
        held = quarantine.record(
            self.state, self.clock(), sender.connector_id, input_name, raw_ref, reason, detail, object_id
        )
        result.quarantined.append(held)


# Stands for an object of the input that is not routed in this run and not held from before.
_NEVER_DELIVERED = VersionRecord("", "", "", "RED", {}, "", "", "", status="quarantined")


def hub_identity(config: HubConfig) -> StixObject:
    """The hub's own identity: the author of change notes, and who anonymised objects appear to come from."""
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": f"identity--{uuid.uuid5(RENKEI_NAMESPACE, 'hub:' + config.hub.id)}",
        "created": "2026-01-01T00:00:00.000Z",
        "modified": "2026-01-01T00:00:00.000Z",
        "name": config.hub.name or config.hub.id,
        "identity_class": "organization",
    }


def _other_extension_definitions(objects: Iterable[StixObject], definitions: dict[str, StixObject]) -> list[StixObject]:
    used = {k for o in objects for k in (o.get("extensions") or {}) if k.startswith("extension-definition--")}
    used -= {RENKEI_EXTENSION_ID, TLP2_EXTENSION_ID}
    return [definitions[k] for k in sorted(used) if k in definitions]


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
