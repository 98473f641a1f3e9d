"""Property 5: across hubs the scope only narrows, and a hub drops what comes back to it (the hop list)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from tests.property.harness import CONNECTOR, Hub, content_of
from tests.property.oracle import TLP2, ScopeView, expect, may_reach_after_relay, rank, sender_of
from tests.property.strategies import COMMUNITY_POOL, OUTSIDE_POOL, TLP_WORDS, bundles, community, hub_configs, scopes

HUB_A, HUB_B = "hub-a", "hub-b"
LEVEL_OF_TLP2 = {ref: level for level, ref in TLP2.items()}


def peer_connector(connector_id: str, peer: str) -> dict[str, Any]:
    """The inbox for signed bundles of `peer` (the same key env as the peer-hub community `peer`)."""
    env = peer.upper().replace("-", "_") + "_PUBLIC_KEY"
    return {
        "id": connector_id,
        "type": "peer",
        "public_key_env": env,
        "sender": {"org": f"{peer} relay", "community": peer},
    }


@st.composite
def hub_a_configs(draw: st.DrawFn) -> dict[str, Any]:
    """Hub A: random communities, always the peer hub B, and an inbox for what B sends back."""
    config = draw(hub_configs(hub_id=HUB_A, must_have=(HUB_B,)))
    config["connectors"].append(peer_connector("from-hub-b", HUB_B))
    return config


@st.composite
def hub_b_configs(draw: st.DrawFn) -> dict[str, Any]:
    """Hub B: communities named like A's and the ones A does not serve, the peer hub A, an inbox from A."""
    pool = [c for c in (*COMMUNITY_POOL, *OUTSIDE_POOL) if c not in (HUB_A, HUB_B)]
    ids = draw(st.lists(st.sampled_from(pool), unique=True, min_size=1, max_size=6))
    communities = [draw(community(i)) for i in ids] + [draw(community(HUB_A, kind="peer-hub"))]
    inbox = peer_connector("from-hub-a", HUB_A)
    if draw(st.booleans()):
        inbox["tlp"] = draw(st.sampled_from(TLP_WORDS))
    if draw(st.booleans()):
        inbox["scope"] = draw(scopes([c["id"] for c in communities]))
    return {"hub": {"id": HUB_B}, "communities": communities, "connectors": [inbox]}


# Found by fuzzing: AMBER with `share_with: all` may leave A (Federation), and B's inbox scope, intersected
# with `all`, then names finance-isac, so B delivers AMBER to a community the original sender never named.
AMBER_TO_ALL = {
    "type": "bundle",
    "id": "bundle--00000000-0000-4000-8000-000000000000",
    "objects": [
        {
            "type": "indicator",
            "spec_version": "2.1",
            "id": "indicator--00000000-0000-4000-8000-000000000001",
            "created": "2020-01-01T00:00:00.000Z",
            "modified": "2020-01-01T00:00:00.000Z",
            "pattern": "[ipv4-addr:value = '198.51.100.0']",
            "pattern_type": "stix",
            "valid_from": "2020-01-01T00:00:00.000Z",
            "object_marking_refs": [TLP2["AMBER"]],
        }
    ],
}
A_SHARING_WITH_ALL = {
    "hub": {"id": HUB_A},
    "communities": [
        {
            "id": HUB_B,
            "kind": "peer-hub",
            "deliver": [{"peer": {"url": "https://b.example/", "public_key_env": "B_KEY"}}],
        }
    ],
    "connectors": [{"id": CONNECTOR, "type": "stix", "sender": {"org": "Bank A"}, "scope": {"share_with": "all"}}],
}
B_INBOX_NAMING_FINANCE = {
    "hub": {"id": HUB_B},
    "communities": [
        {"id": "finance-isac", "kind": "isac", "deliver": [{"pull": {}}]},
        {
            "id": HUB_A,
            "kind": "peer-hub",
            "deliver": [{"peer": {"url": "https://a.example/", "public_key_env": "A_KEY"}}],
        },
    ],
    "connectors": [
        {
            "id": "from-hub-a",
            "type": "peer",
            "public_key_env": "A_KEY",
            "sender": {"org": "Hub A", "community": HUB_A},
            "scope": {"share_with": ["finance-isac"]},
        }
    ],
}


@given(config_a=hub_a_configs(), config_b=hub_b_configs(), bundle=bundles())
@example(config_a=A_SHARING_WITH_ALL, config_b=B_INBOX_NAMING_FINANCE, bundle=AMBER_TO_ALL)
def test_a_relay_never_widens_the_original_scope(
    config_a: dict[str, Any], config_b: dict[str, Any], bundle: dict[str, Any]
) -> None:
    # Given hub A relays an input to its peer hub B
    hub_a, hub_b = Hub(config_a), Hub(config_b)
    expected = expect(config_a, CONNECTOR, bundle)
    original = sender_of(config_a, CONNECTOR)
    relayed = hub_a.ingest(bundle).bundles.get(HUB_B, [])

    # When B ingests what A sent it
    results = [hub_b.ingest(json.dumps(b).encode(), "from-hub-a") for b in relayed]

    # Then no B community gets anything the original sender's scope and TLP did not allow, no object
    # comes out weaker than it left A, and nothing goes back to A
    problems = []
    kinds = {c["id"]: c["kind"] for c in config_b["communities"]}
    for result in results:
        for dest_id, sent in result.bundles.items():
            for obj in content_of(sent):
                if obj["id"] not in expected.objects:
                    continue
                level_a = expected.tlp[obj["id"]]
                levels_b = [LEVEL_OF_TLP2[r] for r in obj.get("object_marking_refs", []) if r in LEVEL_OF_TLP2]
                if dest_id == HUB_A:
                    problems.append(f"{obj['id']} went back to {HUB_A}, which is in its hop list")
                elif kinds[dest_id] != "peer-hub" and not may_reach_after_relay(
                    original.scope, level_a, original.community, dest_id, kinds[dest_id]
                ):
                    problems.append(
                        f"{obj['id']} ({level_a} at A) reached {dest_id} ({kinds[dest_id]}) at B; "
                        f"original scope {_scope(original.scope)}, sender community {original.community}"
                    )
                if len(levels_b) != 1 or rank(levels_b[0]) < rank(level_a):
                    problems.append(f"{obj['id']} left A at {level_a}, left B marked {levels_b}")
    assert not problems, "\n".join(problems) + f"\nB: {json.dumps(config_b)}"


@given(config_a=hub_a_configs(), bundle=bundles())
def test_a_hub_drops_everything_that_comes_back_to_it(config_a: dict[str, Any], bundle: dict[str, Any]) -> None:
    # Given what hub A relayed to B, coming back into A (a fresh instance: no dedupe state to hide behind)
    relayed = Hub(config_a).ingest(bundle).bundles.get(HUB_B, [])
    hub_a_again = Hub(config_a)

    # When A ingests it from its inbox for B
    results = [hub_a_again.ingest(json.dumps(b).encode(), "from-hub-b") for b in relayed]

    # Then A delivers none of it anywhere: it finds itself in the hop list
    for result in results:
        assert not any(result.deliveries.values()), (result.deliveries, result.decisions[:5])
        assert result.counts.get("delivered", 0) == 0


def _scope(scope: ScopeView) -> str:
    share = "all" if scope.share_with is None else sorted(scope.share_with)
    return f"share_with={share} exclude={sorted(scope.exclude_ids)} kinds={sorted(scope.exclude_kinds)}"
