"""TAXII pull and push against a real medallion server, with the real taxii2-client."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.taxii.push import TaxiiPushChannel
from connectors.taxii.source import TaxiiSource
from gateway.errors import PermanentError
from gateway.intake import take
from gateway.memory import InMemoryBlobStore, InMemoryStateStore
from gateway.pipeline import Pipeline
from schemas.config import HubConfig, TaxiiConnector, TaxiiTarget
from tests.connectors.taxii.conftest import COLLECTION, READ_ONLY, USER

AUTH = {"username": USER, "password_env": "FIN_TAXII_PASSWORD"}


def indicator(n: int) -> dict[str, Any]:
    return {
        "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid5(uuid.NAMESPACE_URL, str(n))}",
        "created": "2026-11-20T00:00:00.000Z", "modified": "2026-11-20T00:00:00.000Z",
        "pattern": f"[ipv4-addr:value = '203.0.113.{n % 250}']", "pattern_type": "stix",
        "valid_from": "2026-11-20T00:00:00Z",
    }  # fmt: skip


def pusher(url: str, collection: str = COLLECTION, state: InMemoryStateStore | None = None) -> TaxiiPushChannel:
    return TaxiiPushChannel(TaxiiTarget(url=url, collection=collection, auth=AUTH), state or InMemoryStateStore())


def puller(url: str, state: InMemoryStateStore) -> TaxiiSource:
    connector = TaxiiConnector(id="fin", type="taxii", url=url, collection=COLLECTION, auth=AUTH)
    return TaxiiSource(connector, state, page_size=5)


def test_push_then_pull_every_page_and_resume_from_the_servers_cursor(medallion: str) -> None:
    state = InMemoryStateStore()
    first = [indicator(n) for n in range(12)]
    pusher(medallion).deliver("fin-isac", {"type": "bundle", "id": "bundle--1", "objects": first})
    # When pulled, in pages of 5
    intakes = list(puller(medallion, state).read(None))
    # Then every object came, page by page, and the cursor is the server's date added
    assert [len(i.objects or []) for i in intakes] == [5, 5, 2]
    assert {o["id"] for i in intakes for o in i.objects or []} == {o["id"] for o in first}
    cursor = state.get_cursor("taxii:fin")
    assert cursor is not None and cursor["added_after"].startswith("20")
    # And the next poll reads what was added since, and again only what was added at the cursor's instant
    # (one POST: all twelve here), which dedupe drops; nothing is skipped
    later = [indicator(n) for n in range(100, 103)]
    pusher(medallion).deliver("fin-isac", {"type": "bundle", "id": "bundle--2", "objects": later})
    again = {o["id"] for i in puller(medallion, state).read(None) for o in i.objects or []}
    assert {o["id"] for o in later} <= again and again - {o["id"] for o in later} <= {o["id"] for o in first}


def test_a_push_never_sends_an_object_twice_and_reports_what_failed(medallion: str) -> None:
    state = InMemoryStateStore()
    bundle = {"type": "bundle", "id": "bundle--1", "objects": [indicator(1), indicator(2)]}
    channel = pusher(medallion, state=state)
    channel.deliver("fin-isac", bundle)
    channel.deliver("fin-isac", bundle)  # a retry of the same bundle: nothing left to send
    pulled = list(puller(medallion, InMemoryStateStore()).read(None))
    assert sorted(o["id"] for i in pulled for o in i.objects or []) == sorted(o["id"] for o in bundle["objects"])
    # A collection the hub may not write to: a clear, permanent failure (nothing recorded as sent)
    with pytest.raises(PermanentError, match="does not let this hub write"):
        pusher(medallion, READ_ONLY).deliver("fin-isac", bundle)


def test_pulled_pages_run_through_the_pipeline_as_the_isacs_input(medallion: str) -> None:
    pusher(medallion).deliver("x", {"type": "bundle", "id": "bundle--1", "objects": [indicator(n) for n in range(7)]})
    config = HubConfig.model_validate(
        {
            "hub": {"id": "hub-a"},
            "communities": [{"id": "power-isac", "kind": "isac", "deliver": [{"pull": {}}]}],
            "connectors": [
                {"id": "fin", "type": "taxii", "url": medallion, "collection": COLLECTION, "auth": AUTH, "tlp": "GREEN",
                 "scope": {"share_with": ["power-isac"]}}
            ],
        }
    )  # fmt: skip
    received: list[Any] = []

    class Capture:
        def deliver(self, destination: str, bundle: dict[str, Any]) -> None:
            received.extend(bundle["objects"])

    state = InMemoryStateStore()
    clock = lambda: datetime(2026, 11, 23, tzinfo=UTC)  # noqa: E731
    pipeline = Pipeline(config, state, InMemoryBlobStore(), Capture(), clock=clock, seal_key=b"k" * 32)
    source = TaxiiSource(config.connectors[0], state, page_size=5)  # type: ignore[arg-type]
    totals = [take(pipeline, config, "fin", intake).summary() for intake in source.read(None)]
    assert sum(t["delivered"] for t in totals) == 7
    assert len([o for o in received if o["type"] == "indicator"]) == 7
