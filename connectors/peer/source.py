"""`gateway ingest PEER_CONNECTOR=FILE`: signed envelopes saved to files (a peer pushes; nothing to poll)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from connectors.peer.inbound import receive
from gateway.errors import SourceUnavailable
from gateway.intake import Intake
from gateway.ports import StateStore
from schemas.config import HubConfig, PeerConnector


class PeerSource:
    """Each file holds `{"signature": "<detached JWS>", "envelope": {...}}`, as a peer's POST would carry."""

    def __init__(self, config: HubConfig, connector: PeerConnector, state: StateStore) -> None:
        self.connector = connector
        self.state = state

    def read(self, location: str | None) -> Iterator[Intake]:
        if not location:
            raise SourceUnavailable(f"{self.connector.id}: a peer pushes to /peer/inbox; give {self.connector.id}=FILE")
        path = Path(location)
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        for file in files:
            if not file.is_file():
                raise SourceUnavailable(f"{file}: no such file")
            raw = file.read_bytes()
            try:
                saved = json.loads(raw)
                body = json.dumps(saved["envelope"]).encode()
                headers = {"X-Renkei-Signature": str(saved["signature"])}
            except (ValueError, KeyError, TypeError):
                body, headers = raw, {}
            yield receive(self.connector, body, headers, self.state, name=str(file))
