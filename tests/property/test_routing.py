"""Property 1: an object reaches a destination exactly when the contract's rules (the oracle) allow it."""

from __future__ import annotations

from typing import Any

from hypothesis import given

from tests.property.harness import CONNECTOR, Hub, delivered_ids, explain
from tests.property.oracle import expect
from tests.property.strategies import bundles, hub_configs


@given(config=hub_configs(), bundle=bundles())
def test_delivered_exactly_where_the_contract_allows(config: dict[str, Any], bundle: dict[str, Any]) -> None:
    # Given a random hub and a random bundle from its stix connector
    hub = Hub(config)
    expected = expect(config, CONNECTOR, bundle)

    # When the hub ingests it
    result = hub.ingest(bundle)

    # Then every destination got exactly what the oracle allows, no more and no less
    problems = []
    for dest in config["communities"]:
        got = delivered_ids(result, dest["id"], expected.objects)
        for object_id in sorted(got ^ expected.allowed[dest["id"]]):
            problems.append(explain(result, expected, config, object_id, dest["id"]))
    assert not problems, "\n\n".join(problems)


@given(config=hub_configs(), bundle=bundles())
def test_every_decision_line_agrees_with_the_contract(config: dict[str, Any], bundle: dict[str, Any]) -> None:
    # Given a random hub and bundle
    hub = Hub(config)
    expected = expect(config, CONNECTOR, bundle)

    # When the hub ingests it
    result = hub.ingest(bundle)

    # Then there is one decision per (object, destination), and its verdict is the oracle's
    lines = {(d.object, d.destination): d for d in result.decisions}
    problems = []
    for object_id in expected.objects:
        for dest in config["communities"]:
            line = lines.get((object_id, dest["id"]))
            wanted = object_id in expected.allowed[dest["id"]]
            if line is None or line.allowed != wanted:
                problems.append(explain(result, expected, config, object_id, dest["id"]))
    assert not problems, "\n\n".join(problems)
