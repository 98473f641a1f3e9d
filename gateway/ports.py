"""The ports the core talks to. Adapters: DynamoDB/S3 in connectors/aws, in-memory in gateway/memory.py.

Every method is batch-shaped: DynamoDB costs a round trip per call, so the pipeline asks for all the
ids of an input at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from gateway.model import Delivery, PendingItem, QuarantineRecord, VersionRecord

if TYPE_CHECKING:  # onboarding reads the registry through this port: import only for the types
    from gateway.onboarding import ChangeRecord
    from schemas.config import HubConfig


class StateStore(Protocol):
    """Dedupe, versions, decisions, deliveries, pending approvals, sealed mappings, cursors."""

    def latest(self, object_ids: Iterable[str]) -> dict[str, VersionRecord]:
        """The newest version held for each id that the hub has seen (missing ids are absent)."""
        ...

    def versions(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], VersionRecord]:
        """The records for (object id, version) pairs that exist."""
        ...

    def claim_versions(self, records: Sequence[VersionRecord]) -> list[VersionRecord]:
        """Store new version records, each only if its (id, version) is not held yet (a conditional write).

        Also moves each id's `latest` forward when the version is newer. Returns the records that were
        already held: another worker won the race, so to this one they are duplicates.
        """
        ...

    def update_versions(self, records: Sequence[VersionRecord]) -> None:
        """Overwrite status and decisions of records this worker claimed (after routing or approval)."""
        ...

    def history(self, object_id: str) -> list[VersionRecord]:
        """Every version held for an object, oldest first (for `gateway trace`)."""
        ...

    def delivered(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """For (destination, object id) pairs: the newest version that destination received."""
        ...

    def record_deliveries(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Record deliveries, each only once per (destination, id, version). Returns those newly recorded."""
        ...

    def put_pending(self, item: PendingItem) -> None: ...

    def pending(self) -> list[PendingItem]: ...

    def take_pending(self, pending_id: str) -> PendingItem | None:
        """Remove and return a pending item; None if unknown or already taken (at most one caller wins)."""
        ...

    def put_seal(self, token: str, sealed: bytes) -> None: ...

    def get_seal(self, token: str) -> bytes | None: ...

    def get_cursor(self, name: str) -> dict[str, Any] | None: ...

    def put_cursor(self, name: str, value: dict[str, Any]) -> None: ...

    def add_quarantine(self, record: QuarantineRecord) -> None: ...

    def quarantined(self) -> list[QuarantineRecord]: ...


class BlobStore(Protocol):
    """Raw inputs and quarantined bytes (S3 on AWS)."""

    def put(self, key: str, data: bytes) -> str:
        """Store bytes; returns a reference that `get` accepts."""
        ...

    def get(self, ref: str) -> bytes: ...


class Channel(Protocol):
    """Delivers STIX bundles to one destination community."""

    def deliver(self, destination: str, bundle: dict[str, Any]) -> None:
        """Send the bundle. Raises gateway.errors.RetryableError when a retry may succeed."""
        ...


class RegistryStore(Protocol):
    """The routing state: the onboarded hub config, its version, and the history of applied changes."""

    def current(self) -> tuple[int, HubConfig] | None:
        """(version, config) as last applied; None when nothing is onboarded yet."""
        ...

    def apply(self, config: HubConfig, expected_version: int | None, change: ChangeRecord) -> int:
        """Store `config` and its change record at once, as version `expected_version + 1` (1 for the first).

        All or nothing: a reader sees the old config or the new one, never a mix. Returns the new version.
        Raises gateway.errors.ConflictError when the registry is no longer at `expected_version`.
        """
        ...

    def history(self) -> list[ChangeRecord]:
        """Every applied change, oldest first."""
        ...
