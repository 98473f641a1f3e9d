"""The `taxii` channel: add a bundle's objects to a community's TAXII 2.1 collection, follow the status to the
end, and remember each object that arrived, so a retry sends only what failed and never anything twice."""

from __future__ import annotations

from typing import Any

import requests

from connectors.taxii.client import collection, with_retries
from gateway.errors import PartialDelivery, PermanentError
from gateway.ports import StateStore
from schemas.config import TaxiiTarget

STATUS_TIMEOUT_SECONDS = 60


class TaxiiPushChannel:
    def __init__(self, target: TaxiiTarget, state: StateStore) -> None:
        self.target = target
        self.state = state

    def deliver(self, destination: str, bundle: dict[str, Any]) -> None:
        objects = [o for o in bundle["objects"] if not self._sent(destination, o)]
        if not objects:
            return
        target = collection(self.target.url, self.target.collection, self.target.auth)
        envelope = {"objects": objects}
        try:
            target.can_write  # noqa: B018 - reads the collection's information (a request), before sending
        except requests.HTTPError as exc:
            raise PermanentError(f"{destination}: collection unreachable (HTTP {exc.response.status_code})") from None
        if not target.can_write:
            raise PermanentError(f"{destination}: the collection does not let this hub write")
        status = with_retries(
            lambda: target.add_objects(envelope, wait_for_completion=True, poll_interval=0.2,
                                       timeout=STATUS_TIMEOUT_SECONDS),
            f"{destination}: add objects",
        )  # fmt: skip
        arrived = {str(s.get("id")) for s in (status.successes or []) if isinstance(s, dict)}
        for obj in objects:
            if obj["id"] in arrived:
                self._remember(destination, obj)
        failed = frozenset(o["id"] for o in objects if o["id"] not in arrived)
        if failed:
            pending = len(status.pendings or [])
            raise PartialDelivery(f"{destination}: {len(failed)} object(s) not added ({pending} still pending)", failed)

    def _key(self, destination: str, obj: dict[str, Any]) -> str:
        version = obj.get("modified") or obj.get("created") or ""
        return f"taxii-push:{destination}:{self.target.collection}:{obj['id']}:{version}"

    def _sent(self, destination: str, obj: dict[str, Any]) -> bool:
        return self.state.get_cursor(self._key(destination, obj)) is not None

    def _remember(self, destination: str, obj: dict[str, Any]) -> None:
        self.state.put_cursor(self._key(destination, obj), {"added": True})
