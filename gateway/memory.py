"""In-memory implementations of the state and blob ports: for unit tests and benchmarks.

They keep the semantics of the DynamoDB adapters (conditional claims, take-once pending, values that come back
as JSON would), not their cost. Nothing a caller holds, before or after a call, aliases what is stored.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

import orjson

from gateway.errors import PermanentError
from gateway.model import Delivery, PendingItem, QuarantineRecord, VersionRecord


class _Held(NamedTuple):
    """A version record as stored. Scope and body are kept as JSON: a caller that mutates its dicts later
    cannot reach them, it costs less than a deep copy, and values come back as DynamoDB returns them.
    Scopes and decision maps repeat across objects: each distinct one is held once (see `_Interned`)."""

    object_id: str
    version: str
    content_hash: str
    tlp: str
    scope: bytes
    connector: str
    sender_org: str
    recorded_at: str
    status: str
    decisions: tuple[tuple[str, bool, str], ...]
    body: bytes | None
    config_version: str


class _Interned:
    """One shared copy of each distinct scope and decision map: at 720,000 objects routed to ten destinations,
    ten (allowed, reason) pairs per object held separately cost more than the objects themselves."""

    def __init__(self) -> None:
        self._values: dict[object, object] = {}

    def __call__(self, value: object) -> object:
        return self._values.setdefault(value, value)

    def hold(self, r: VersionRecord) -> _Held:
        decisions = tuple(sorted((dest, allowed, reason) for dest, (allowed, reason) in r.decisions.items()))
        return _Held(
            r.object_id,
            r.version,
            r.content_hash,
            r.tlp,
            self(_compact(orjson.dumps(r.scope))),  # type: ignore[arg-type]
            r.connector,
            r.sender_org,
            r.recorded_at,
            r.status,
            self(decisions),  # type: ignore[arg-type]
            # Bodies are read only for a follow-up's change note: kept compressed (about 3x smaller, a few µs).
            None if r.body is None else zlib.compress(orjson.dumps(r.body), 1),
            r.config_version,
        )


def _compact(data: bytes) -> bytes:
    # orjson's result keeps its oversized write buffer alive; a copy is exactly as long as the JSON.
    # Held for every version of every object, that is the difference between ~1.4 GB and ~10 GB at 720k.
    return bytes(memoryview(data))


def _record(h: _Held) -> VersionRecord:
    return VersionRecord(
        object_id=h.object_id,
        version=h.version,
        content_hash=h.content_hash,
        tlp=h.tlp,
        scope=orjson.loads(h.scope),
        connector=h.connector,
        sender_org=h.sender_org,
        recorded_at=h.recorded_at,
        status=h.status,
        decisions={dest: (allowed, reason) for dest, allowed, reason in h.decisions},
        body=None if h.body is None else orjson.loads(zlib.decompress(h.body)),
        config_version=h.config_version,
    )


def _newer(version: str, held: str | None) -> bool:
    # sha256 versions (objects without timestamps) have no order: any other one is an update
    return held is None or (version != held and (version.startswith("sha256:") or version > held))


def _pending(data: bytes) -> PendingItem:
    fields = orjson.loads(data)
    fields["hops"] = tuple(fields["hops"])
    fields["private_values"] = tuple(fields.get("private_values", ()))
    return PendingItem(**fields)


class InMemoryStateStore:
    """The StateStore port on dicts. Thread-safe where the port promises a single winner."""

    def __init__(self) -> None:
        # claims and takes must have one winner even when threads share the store, as on DynamoDB
        self._lock = threading.Lock()
        self._versions: dict[str, dict[str, _Held]] = {}  # object id -> version -> record
        self._latest: dict[str, str] = {}
        self._interned = _Interned()
        # object id -> destination -> the newest version delivered there (one small map per object, not a
        # tuple key per pair: seven million pairs at 720k objects); older versions delivered, rarely any:
        self._delivered: dict[str, dict[str, str]] = {}
        self._superseded: set[tuple[str, str, str]] = set()
        self._pending: dict[str, bytes] = {}
        self._seals: dict[str, bytes] = {}
        self._cursors: dict[str, bytes] = {}
        self._quarantine: list[QuarantineRecord] = []

    def latest(self, object_ids: Iterable[str]) -> dict[str, VersionRecord]:
        out: dict[str, VersionRecord] = {}
        for object_id in object_ids:
            version = self._latest.get(object_id)
            if version is not None:
                out[object_id] = _record(self._versions[object_id][version])
        return out

    def versions(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], VersionRecord]:
        out: dict[tuple[str, str], VersionRecord] = {}
        for key in keys:
            held = self._versions.get(key[0])
            if held is not None and key[1] in held:
                out[key] = _record(held[key[1]])
        return out

    def claim_versions(self, records: Sequence[VersionRecord]) -> list[VersionRecord]:
        lost: list[VersionRecord] = []
        with self._lock:
            for record in records:
                held = self._versions.setdefault(record.object_id, {})
                if record.version in held:
                    lost.append(_record(held[record.version]))
                    continue
                held[record.version] = self._interned.hold(record)
                if _newer(record.version, self._latest.get(record.object_id)):
                    self._latest[record.object_id] = record.version
        return lost

    def update_versions(self, records: Sequence[VersionRecord]) -> None:
        with self._lock:
            for record in records:
                self._versions.setdefault(record.object_id, {})[record.version] = self._interned.hold(record)

    def history(self, object_id: str) -> list[VersionRecord]:
        held = self._versions.get(object_id, {}).values()
        return sorted((_record(h) for h in held), key=lambda r: (r.recorded_at, r.version))

    def delivered(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        out: dict[tuple[str, str], str] = {}
        for dest, object_id in pairs:
            version = self._delivered.get(object_id, {}).get(dest)
            if version is not None:
                out[(dest, object_id)] = version
        return out

    def record_deliveries(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        new: list[Delivery] = []
        with self._lock:
            for d in deliveries:
                there = self._delivered.setdefault(d.object_id, {})
                held = there.get(d.destination)
                if held == d.version or (d.destination, d.object_id, d.version) in self._superseded:
                    continue  # recorded before
                if _newer(d.version, held):
                    there[d.destination] = d.version
                    if held is not None:
                        self._superseded.add((d.destination, d.object_id, held))
                else:
                    self._superseded.add((d.destination, d.object_id, d.version))
                new.append(d)
        return new

    def put_pending(self, item: PendingItem) -> None:
        self._pending[item.pending_id] = orjson.dumps(item)

    def pending(self) -> list[PendingItem]:
        return sorted(
            (_pending(data) for data in list(self._pending.values())), key=lambda p: (p.created, p.pending_id)
        )

    def take_pending(self, pending_id: str) -> PendingItem | None:
        with self._lock:
            data = self._pending.pop(pending_id, None)
        return None if data is None else _pending(data)

    def put_seal(self, token: str, sealed: bytes) -> None:
        self._seals.setdefault(token, bytes(sealed))  # the first seal of a pseudonym stays

    def get_seal(self, token: str) -> bytes | None:
        return self._seals.get(token)

    def get_cursor(self, name: str) -> dict[str, Any] | None:
        data = self._cursors.get(name)
        if data is None:
            return None
        value: dict[str, Any] = orjson.loads(data)
        return value

    def put_cursor(self, name: str, value: dict[str, Any]) -> None:
        self._cursors[name] = orjson.dumps(value)

    def add_quarantine(self, record: QuarantineRecord) -> None:
        self._quarantine.append(replace(record))

    def quarantined(self) -> list[QuarantineRecord]:
        ordered = sorted(self._quarantine, key=lambda r: (r.recorded_at, r.quarantine_id))
        return [replace(r) for r in ordered]


class InMemoryBlobStore:
    """The BlobStore port on a dict; references look like `mem://KEY`. Every raw input is kept, as in S3, so
    the bytes are compressed: JSON and mail shrink four to eight times for a few µs per object."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    def put(self, key: str, data: bytes) -> str:
        self._blobs[key] = zlib.compress(data, 1)
        return f"mem://{key}"

    def get(self, ref: str) -> bytes:
        """The bytes stored under `ref`. Raises PermanentError for a reference this store did not make."""
        data = self._blobs.get(ref.removeprefix("mem://")) if ref.startswith("mem://") else None
        if data is None:
            raise PermanentError(f"no blob at {ref}")
        return zlib.decompress(data)
