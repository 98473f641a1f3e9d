"""The `taxii` connector's pull: a TAXII 2.1 collection, page by page, from where the last poll ended.

The cursor is the server's `X-TAXII-Date-Added-Last`, never the clock nor STIX `modified`. Pages follow `next`
(with the original query), or when `more` comes without `next`, `added_after` = the page's last date added.
`added_after` excludes that instant, so objects that share it with the page's last one could be skipped: the
hub asks from a millisecond earlier and lets dedupe drop the few it reads twice. A server whose pages come
again (a looping `next`), or that answers garbage, gets a clear error, and the run is bounded in pages.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import requests

from connectors.taxii.client import collection, with_retries
from gateway.errors import PermanentError
from gateway.intake import Intake, Refusal
from gateway.ports import StateStore
from schemas.config import TaxiiConnector

PAGE_SIZE = 500
MAX_PAGES = 200
TAXII_MEDIA = "application/taxii+json;version=2.1"


class ServerMisbehaves(PermanentError):
    """The server's paging or answers cannot be followed (a loop, no progress, not TAXII)."""


class TaxiiSource:
    def __init__(self, connector: TaxiiConnector, state: StateStore, page_size: int = PAGE_SIZE) -> None:
        self.connector = connector
        self.state = state
        self.page_size = page_size

    @property
    def cursor_name(self) -> str:
        return f"taxii:{self.connector.id}"

    def read(self, location: str | None) -> Iterator[Intake]:
        if self.connector.direction == "push":
            return
        target = collection(location or self.connector.url, self.connector.collection, self.connector.auth)
        cursor = self.state.get_cursor(self.cursor_name) or {}
        added_after: str | None = cursor.get("added_after")
        params: dict[str, Any] = {"limit": self.page_size}
        if added_after:
            params["added_after"] = added_after
        last_added = added_after
        pages_seen: set[tuple[str, ...]] = set()
        for page_number in range(1, MAX_PAGES + 1):
            response = with_retries(functools.partial(_get, target, dict(params)), f"{self.connector.id}: get objects")
            envelope = _envelope(response)
            objects = envelope.get("objects") or []
            # Some servers keep one `next` token for a whole query (medallion does): a loop shows as a page
            # that comes again, not as a token that does.
            page = tuple(f"{o.get('id')}|{o.get('modified')}" for o in objects if isinstance(o, dict))
            if page and page in pages_seen:
                raise ServerMisbehaves(f"{self.connector.id}: the server returned a page it had returned before")
            pages_seen.add(page)
            page_last = response.headers.get("X-TAXII-Date-Added-Last") or last_added
            name = f"{target.url}objects/#page{page_number}"
            if objects:
                yield Intake(name, response.content, objects=[o for o in objects if isinstance(o, dict)])
            elif envelope.get("objects") is not None and not isinstance(envelope.get("objects"), list):
                yield Intake(name, response.content, refusal=Refusal("taxii:bad-envelope", "objects is not a list"))
            last_added = page_last
            if not envelope.get("more"):
                break
            next_token = envelope.get("next")
            if next_token:
                params = {**params, "next": next_token}
            else:
                if not page_last:
                    raise ServerMisbehaves(f"{self.connector.id}: `more` without `next` nor X-TAXII-Date-Added-Last")
                params = {k: v for k, v in params.items() if k != "next"} | {"added_after": _earlier(page_last)}
        else:
            raise ServerMisbehaves(f"{self.connector.id}: more than {MAX_PAGES} pages in one poll; the rest next time")
        if last_added and last_added != added_after:
            # Only now: a crash before this line means the next poll reads these pages again (dedupe drops them).
            self.state.put_cursor(self.cursor_name, {"added_after": _earlier(last_added)})


def _get(target: Any, params: dict[str, Any]) -> requests.Response:
    response: requests.Response = target._conn.session.get(  # the client's session: its auth, its TLS settings
        target.objects_url, headers={"Accept": TAXII_MEDIA}, params=params, timeout=30
    )
    response.raise_for_status()
    return response


def _envelope(response: requests.Response) -> dict[str, Any]:
    media = response.headers.get("Content-Type", "").replace(" ", "").lower()
    if not media.startswith("application/taxii+json"):
        raise ServerMisbehaves(f"not a TAXII answer (Content-Type {media[:60]!r})")
    try:
        envelope = response.json()
    except ValueError:
        raise ServerMisbehaves("the TAXII answer is not JSON") from None
    if not isinstance(envelope, dict):
        raise ServerMisbehaves("the TAXII answer is not an envelope")
    return envelope


def _earlier(timestamp: str) -> str:
    """A millisecond before `timestamp` (RFC 3339), so objects added at that same instant are read again."""
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    earlier = moment - timedelta(milliseconds=1)
    return earlier.strftime("%Y-%m-%dT%H:%M:%S.") + f"{earlier.microsecond:06d}Z"
