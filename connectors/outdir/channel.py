"""A channel that writes each bundle to DIR/<community>/NNNN.json instead of sending it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson


class OutDirChannel:
    """Implements gateway.ports.Channel for `gateway ingest --out DIR`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._counts: dict[str, int] = {}

    def deliver(self, destination: str, bundle: dict[str, Any]) -> None:
        folder = self.root / destination
        folder.mkdir(parents=True, exist_ok=True)
        n = self._counts.get(destination, len(list(folder.glob("*.json")))) + 1
        self._counts[destination] = n
        (folder / f"{n:04d}.json").write_bytes(orjson.dumps(bundle, option=orjson.OPT_INDENT_2))
