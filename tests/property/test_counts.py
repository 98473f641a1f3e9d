"""Property 4: every object is counted once, in the outcome the contract gives it; a resend is all duplicates."""

from __future__ import annotations

from typing import Any

from hypothesis import given

from tests.property.harness import CONNECTOR, Hub
from tests.property.oracle import DEFINITION_TYPES, expect
from tests.property.strategies import bundles, hub_configs

OUTCOMES = ("delivered", "withheld", "pending", "quarantined", "duplicate")


@given(config=hub_configs(), bundle=bundles())
def test_counts_add_up_and_match_the_contract(config: dict[str, Any], bundle: dict[str, Any]) -> None:
    # Given a random hub and bundle
    hub = Hub(config)
    expected = expect(config, CONNECTOR, bundle)
    content = [o for o in bundle["objects"] if o["type"] not in DEFINITION_TYPES]

    # When the hub ingests it
    result = hub.ingest(bundle)

    # Then objects = delivered + withheld + pending + quarantined + duplicate, over the input's content objects
    counts = {key: result.counts.get(key, 0) for key in ("objects", *OUTCOMES)}
    assert counts["objects"] == sum(counts[k] for k in OUTCOMES), counts
    assert counts["objects"] == len(content), counts
    # and a fresh, valid input splits into delivered and withheld as the oracle says
    assert counts == {
        "objects": len(content),
        "delivered": len(expected.delivered),
        "withheld": len(expected.withheld),
        "pending": 0,
        "quarantined": 0,
        "duplicate": 0,
    }, (counts, [r.reason for r in result.quarantined])
    # and the per-community deliveries are the oracle's
    deliveries = {k: v for k, v in result.deliveries.items() if v}
    assert deliveries == {d: len(ids) for d, ids in expected.allowed.items() if ids}


@given(config=hub_configs(), bundle=bundles())
def test_the_same_input_twice_is_all_duplicates_and_delivers_nothing(
    config: dict[str, Any], bundle: dict[str, Any]
) -> None:
    # Given a hub that has ingested a bundle once
    hub = Hub(config)
    first = hub.ingest(bundle)

    # When the same bytes come again
    second = hub.ingest(bundle)

    # Then every object is a duplicate and no destination receives anything
    counts = {key: second.counts.get(key, 0) for key in ("objects", *OUTCOMES)}
    assert counts["objects"] == first.counts["objects"]
    assert counts["duplicate"] == counts["objects"], counts
    assert not any(second.deliveries.values()), second.deliveries
    assert not second.bundles
