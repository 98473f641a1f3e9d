"""The `feed` connector: read an advisory feed from a file or a URL (conditional GET, a cursor in state), and
hand over one intake per advisory. A feed that cannot be read at all is one refused intake; a malformed
item is refused alone."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connectors.feed.advisory import BadItem
from connectors.feed.convert import NoDate, to_stix
from connectors.feed.dialects import FeedRefused, read_feed
from gateway.errors import SourceUnavailable
from gateway.intake import Intake, Refusal
from gateway.ports import StateStore
from gateway.stixjson import MAX_INPUT_BYTES
from schemas.config import FeedConnector

TIMEOUT_SECONDS = 30
ACCEPT = "application/rss+xml, application/rdf+xml, application/atom+xml, application/json, application/xml;q=0.9"


class FeedSource:
    def __init__(self, connector: FeedConnector, state: StateStore) -> None:
        self.connector = connector
        self.state = state

    @property
    def cursor_name(self) -> str:
        return f"feed:{self.connector.id}"

    def read(self, location: str | None) -> Iterator[Intake]:
        location = location or self.connector.source
        if location.startswith(("http://", "https://")):
            fetched = self._fetch(location)
            if fetched is None:  # 304: nothing new since the last poll
                return
            data, validators = fetched
            yield from self._intakes(location, data)
            # Only after every intake was handed over: a crash meanwhile means the next poll reads it again.
            self.state.put_cursor(self.cursor_name, validators)
            return
        path = Path(location)
        if not path.is_file():
            raise SourceUnavailable(f"{location}: no such file")
        with path.open("rb") as handle:
            yield from self._intakes(str(path), handle.read(MAX_INPUT_BYTES + 1))

    def _intakes(self, name: str, data: bytes) -> Iterator[Intake]:
        if len(data) > MAX_INPUT_BYTES:
            yield Intake(name, data, refusal=Refusal("feed:too-large", f"over {MAX_INPUT_BYTES} bytes"))
            return
        try:
            for parsed in read_feed(data, self.connector.allow_internal_entities):
                if isinstance(parsed, BadItem):
                    yield Intake(f"{name}#{parsed.name}", parsed.raw, refusal=Refusal(parsed.reason, parsed.detail))
                    continue
                item_name = f"{name}#{parsed.key}"
                try:
                    yield Intake(item_name, parsed.raw, objects=to_stix(parsed))
                except NoDate as exc:
                    yield Intake(item_name, parsed.raw, refusal=Refusal("feed:no-date", str(exc)[:200]))
        except FeedRefused as refused:
            yield Intake(name, data, refusal=refused.refusal)

    def _fetch(self, url: str) -> tuple[bytes, dict[str, Any]] | None:
        cursor = self.state.get_cursor(self.cursor_name) or {}
        headers = {"Accept": ACCEPT, "User-Agent": "Renkei feed connector"}
        if cursor.get("etag"):
            headers["If-None-Match"] = cursor["etag"]
        if cursor.get("last_modified"):
            headers["If-Modified-Since"] = cursor["last_modified"]
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 (http/https only)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
                data: bytes = response.read(MAX_INPUT_BYTES + 1)
                validators = {
                    "etag": response.headers.get("ETag"),
                    "last_modified": response.headers.get("Last-Modified"),
                }
        except urllib.error.HTTPError as exc:
            if exc.code == 304:
                return None
            raise SourceUnavailable(f"{url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, TimeoutError, ValueError) as exc:
            raise SourceUnavailable(f"{url}: {exc}") from exc
        return data, {k: v for k, v in validators.items() if v}
