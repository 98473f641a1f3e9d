"""In-memory implementations of the state and blob ports: for unit tests and benchmarks.

They keep the semantics of the DynamoDB adapters (conditional claims, take-once pending), not their cost.
Records are copied on the way in so a caller mutating its objects later cannot alter what is stored.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from gateway.model import Delivery, PendingItem, QuarantineRecord, VersionRecord


def _copy(record: VersionRecord) -> VersionRecord:
    return dataclasses.replace(record, decisions=dict(record.decisions))


def _newer(version: str, held: str) -> bool:
    return version != held and (version.startswith("sha256:") or version > held)


class InMemoryStateStore:
    """Implements gateway.ports.StateStore with dicts, under a lock (claims must stay race-free)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[tuple[str, str], VersionRecord] = {}
        self._latest: dict[str, str] = {}
        self._delivered: dict[tuple[str, str], str] = {}
        self._delivery_log: set[tuple[str, str, str]] = set()
        self._pending: dict[str, PendingItem] = {}
        self._seals: dict[str, bytes] = {}
        self._cursors: dict[str, dict[str, Any]] = {}
        self._quarantine: list[QuarantineRecord] = []

    def latest(self, object_ids: Iterable[str]) -> dict[str, VersionRecord]:
        out = {}
        for object_id in object_ids:
            version = self._latest.get(object_id)
            if version is not None:
                out[object_id] = self._versions[(object_id, version)]
        return out

    def versions(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], VersionRecord]:
        return {key: self._versions[key] for key in keys if key in self._versions}

    def claim_versions(self, records: Sequence[VersionRecord]) -> list[VersionRecord]:
        lost = []
        with self._lock:
            for record in records:
                key = (record.object_id, record.version)
                if key in self._versions:
                    lost.append(self._versions[key])
                    continue
                self._versions[key] = _copy(record)
                held = self._latest.get(record.object_id)
                if held is None or _newer(record.version, held):
                    self._latest[record.object_id] = record.version
        return lost

    def update_versions(self, records: Sequence[VersionRecord]) -> None:
        with self._lock:
            for record in records:
                self._versions[(record.object_id, record.version)] = _copy(record)

    def history(self, object_id: str) -> list[VersionRecord]:
        return sorted((r for (i, _), r in self._versions.items() if i == object_id), key=lambda r: r.recorded_at)

    def delivered(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        return {pair: self._delivered[pair] for pair in pairs if pair in self._delivered}

    def record_deliveries(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        recorded = []
        with self._lock:
            for d in deliveries:
                key = (d.destination, d.object_id, d.version)
                if key in self._delivery_log:
                    continue
                self._delivery_log.add(key)
                held = self._delivered.get((d.destination, d.object_id))
                if held is None or _newer(d.version, held):
                    self._delivered[(d.destination, d.object_id)] = d.version
                recorded.append(d)
        return recorded

    def put_pending(self, item: PendingItem) -> None:
        self._pending[item.pending_id] = item

    def pending(self) -> list[PendingItem]:
        return sorted(self._pending.values(), key=lambda p: p.created)

    def take_pending(self, pending_id: str) -> PendingItem | None:
        with self._lock:
            return self._pending.pop(pending_id, None)

    def put_seal(self, token: str, sealed: bytes) -> None:
        self._seals.setdefault(token, sealed)

    def get_seal(self, token: str) -> bytes | None:
        return self._seals.get(token)

    def get_cursor(self, name: str) -> dict[str, Any] | None:
        return self._cursors.get(name)

    def put_cursor(self, name: str, value: dict[str, Any]) -> None:
        self._cursors[name] = dict(value)

    def add_quarantine(self, record: QuarantineRecord) -> None:
        self._quarantine.append(record)

    def quarantined(self) -> list[QuarantineRecord]:
        return list(self._quarantine)


class InMemoryBlobStore:
    """Implements gateway.ports.BlobStore with a dict."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    def put(self, key: str, data: bytes) -> str:
        self._blobs[key] = bytes(data)
        return f"mem://{key}"

    def get(self, ref: str) -> bytes:
        return self._blobs[ref.removeprefix("mem://")]
