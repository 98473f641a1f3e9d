"""An in-memory registry (gateway.ports.RegistryStore) for unit tests: same versioning and conflicts as DynamoDB."""

from __future__ import annotations

import dataclasses
import threading

from gateway.errors import ConflictError
from gateway.onboarding import ChangeRecord, config_from_json, config_json
from schemas.config import HubConfig


class InMemoryRegistryStore:
    """Keeps the config as its stored JSON, so a test reads back what DynamoDB would hand a reader."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: tuple[int, str] | None = None
        self._history: list[ChangeRecord] = []

    def current(self) -> tuple[int, HubConfig] | None:
        held = self._current
        return None if held is None else (held[0], config_from_json(held[1]))

    def apply(self, config: HubConfig, expected_version: int | None, change: ChangeRecord) -> int:
        with self._lock:
            held = None if self._current is None else self._current[0]
            if held != expected_version:
                raise ConflictError(f"the registry is at version {held}, not {expected_version}")
            version = (expected_version or 0) + 1
            self._current = (version, config_json(config))
            self._history.append(dataclasses.replace(change, version=version))
            return version

    def history(self) -> list[ChangeRecord]:
        return list(self._history)
