"""Hubs relaying to each other on 127.0.0.1: signed bundles, loops that die, scopes that only narrow, and
forged or replayed bundles quarantined."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from jwcrypto import jwk, jws

from connectors.peer.inbound import receive
from connectors.peer.outbound import PeerChannel, envelope
from connectors.peer.signing import canonical, new_keypair, sign
from gateway.intake import take
from gateway.memory import InMemoryBlobStore, InMemoryStateStore
from gateway.normalize import RENKEI_EXTENSION_ID
from gateway.pipeline import Pipeline, RunResult
from gateway.senders import sender_for
from schemas.config import HubConfig, PeerConnector
from schemas.config import PeerChannel as PeerChannelConfig

NOW = datetime(2026, 11, 23, tzinfo=UTC)


class Hub:
    """One Renkei hub: a pipeline on in-memory state, peers delivered over HTTP, an inbox on 127.0.0.1."""

    def __init__(self, hub_id: str, key: bytes) -> None:
        self.id, self.key = hub_id, key
        self.state = InMemoryStateStore()
        self.received: dict[str, list[dict[str, Any]]] = {}
        self.inbox_results: list[RunResult] = []
        self.config: HubConfig | None = None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/peer/inbox"

    def configure(self, config: dict[str, Any]) -> None:
        self.config = HubConfig.model_validate(config)
        hub = self

        class Channels:
            def deliver(self, destination: str, bundle: dict[str, Any]) -> None:
                community = hub.config.community(destination)  # type: ignore[union-attr]
                channel = community.deliver[0]  # type: ignore[union-attr]
                if isinstance(channel, PeerChannelConfig):
                    PeerChannel(hub.config.hub, channel.peer, hub.key).deliver(destination, bundle)  # type: ignore[union-attr]
                else:
                    hub.received.setdefault(destination, []).extend(bundle["objects"])

        self.pipeline = Pipeline(self.config, self.state, InMemoryBlobStore(), Channels(), seal_key=b"k" * 32)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Inbox(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                connector = next(c for c in hub.config.connectors if isinstance(c, PeerConnector))  # type: ignore[union-attr]
                intake = receive(connector, body, dict(self.headers.items()), hub.state)
                hub.inbox_results.append(take(hub.pipeline, hub.config, connector.id, intake))  # type: ignore[arg-type]
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        return Inbox

    def ids(self, community: str) -> set[str]:
        return {o["id"] for o in self.received.get(community, []) if o["type"] == "indicator"}


def indicator(name: str) -> dict[str, Any]:
    import uuid

    return {
        "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid5(uuid.NAMESPACE_URL, name)}",
        "created": "2026-11-20T00:00:00.000Z", "modified": "2026-11-20T00:00:00.000Z", "name": name,
        "pattern": "[ipv4-addr:value = '203.0.113.7']", "pattern_type": "stix", "valid_from": "2026-11-20T00:00:00Z",
    }  # fmt: skip


def community(cid: str, kind: str = "isac") -> dict[str, Any]:
    return {"id": cid, "kind": kind, "deliver": [{"pull": {}}]}


def peer(cid: str, url: str, env: str, hub_id: str) -> dict[str, Any]:
    return {"id": cid, "kind": "peer-hub", "deliver": [{"peer": {"url": url, "public_key_env": env, "hub_id": hub_id}}]}


@pytest.fixture
def hubs(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Hub]]:
    made = {}
    for name in ("a", "b", "c"):
        private, public = new_keypair()
        monkeypatch.setenv(f"HUB_{name.upper()}_PUBLIC", public.decode())
        # the same key under another name: a channel that B does not recognise as where the object came from
        monkeypatch.setenv(f"HUB_{name.upper()}_PUBLIC_ALIAS", public.decode())
        made[name] = Hub(f"hub-{name}", private)
    yield made
    for hub in made.values():
        hub.server.shutdown()


def test_a_to_b_to_a_dies_at_a_and_scope_narrows_across_three_hubs(hubs: dict[str, Hub]) -> None:
    a, b, c = hubs["a"], hubs["b"], hubs["c"]
    # A: its analysts share GREEN with power-isac and with the federation's energy-isac (served by C)
    a.configure({
        "hub": {"id": "hub-a", "remote": ["energy-isac"]},
        "communities": [community("power-isac"), peer("to-b", b.url, "HUB_B_PUBLIC", "hub-b")],
        "connectors": [
            {"id": "drop", "type": "stix", "tlp": "GREEN", "sender": {"org": "CERT A"},
             "scope": {"share_with": ["power-isac", "to-b", "energy-isac"]}},
            {"id": "from-b", "type": "peer", "public_key_env": "HUB_B_PUBLIC", "sender": {"org": "Hub B"}},
        ],
    })  # fmt: skip
    # B relays everything on to C, and (misconfigured: it does not see A as the source) back to A
    b.configure({
        "hub": {"id": "hub-b"},
        "communities": [community("telecom-isac"), peer("to-a", a.url, "HUB_A_PUBLIC_ALIAS", "hub-a-alias"),
                        peer("to-c", c.url, "HUB_C_PUBLIC", "hub-c")],
        "connectors": [{"id": "from-a", "type": "peer", "public_key_env": "HUB_A_PUBLIC", "sender": {"org": "Hub A"},
                        "scope": {"share_with": "all"}}],
    })  # fmt: skip
    # C serves energy-isac and finance-isac
    c.configure({
        "hub": {"id": "hub-c"},
        "communities": [community("energy-isac"), community("finance-isac")],
        "connectors": [{"id": "from-b", "type": "peer", "public_key_env": "HUB_B_PUBLIC", "sender": {"org": "Hub B"},
                        "scope": {"share_with": "all"}}],
    })  # fmt: skip
    # When A's analysts publish
    obj = indicator("green-one")
    a.pipeline.ingest(orjson.dumps({"type": "bundle", "id": "bundle--1", "objects": [obj]}),
                      sender_for(a.config, "drop"), "in.json")  # type: ignore[arg-type]  # fmt: skip
    # Then it reached power-isac at A, went to B and C; at C only the community A's sender named
    assert obj["id"] in a.ids("power-isac")
    assert obj["id"] in c.ids("energy-isac") and obj["id"] not in c.ids("finance-isac")
    assert obj["id"] not in b.ids("telecom-isac")  # not named by the sender: the scope only narrows
    # And what B sent back to A died at A: hub-a is on its hop list
    assert len(a.inbox_results) == 1
    looped = a.inbox_results[0]
    # (A holds that very version already, so it is a duplicate there; a new version would die on the hop list)
    assert looped.counts["delivered"] == 0 and looped.counts["duplicate"] == 1
    assert [o["id"] for o in a.received["power-isac"]].count(obj["id"]) == 1
    at_c = next(o for o in c.received["energy-isac"] if o["id"] == obj["id"])
    assert at_c["extensions"][RENKEI_EXTENSION_ID]["hops"] == ["hub-a", "hub-b", "hub-c"]


def test_forged_and_replayed_bundles_are_quarantined_with_the_reason(hubs: dict[str, Hub]) -> None:
    a, b = hubs["a"], hubs["b"]
    b.configure({"hub": {"id": "hub-b"}, "communities": [community("telecom-isac")],
                 "connectors": [{"id": "from-a", "type": "peer", "public_key_env": "HUB_A_PUBLIC"}]})  # fmt: skip
    connector = b.config.connectors[0]  # type: ignore[union-attr]
    signed = envelope("hub-a", {"type": "bundle", "id": "bundle--1", "objects": [indicator("x")]}, NOW)
    signature = sign(signed, a.key, "hub-a")
    body = orjson.dumps(signed)
    ok = receive(connector, body, {"X-Renkei-Signature": signature}, b.state, now=NOW)  # type: ignore[arg-type]
    assert ok.refusal is None and ok.objects and ok.hops == ("hub-a",)
    replay = receive(connector, body, {"X-Renkei-Signature": signature}, b.state, now=NOW)  # type: ignore[arg-type]
    assert replay.refusal is not None and replay.refusal.reason == "peer:replay"
    tampered = body.replace(b"203.0.113.7", b"203.0.113.8")
    forged = receive(connector, tampered, {"X-Renkei-Signature": signature}, b.state, now=NOW)  # type: ignore[arg-type]
    assert forged.refusal is not None and forged.refusal.reason == "peer:bad-signature"
    other_key, _ = new_keypair()
    fresh = envelope("hub-a", {"type": "bundle", "id": "bundle--2", "objects": []}, NOW)
    wrong = receive(
        connector, orjson.dumps(fresh), {"X-Renkei-Signature": sign(fresh, other_key, "hub-a")}, b.state, now=NOW
    )  # type: ignore[arg-type]
    assert wrong.refusal is not None and wrong.refusal.reason == "peer:bad-signature"
    old = envelope("hub-a", {"type": "bundle", "id": "bundle--3", "objects": []}, NOW - timedelta(days=1))
    stale = receive(connector, orjson.dumps(old), {"X-Renkei-Signature": sign(old, a.key, "hub-a")}, b.state, now=NOW)  # type: ignore[arg-type]
    assert stale.refusal is not None and stale.refusal.reason == "peer:stale"
    # And the pipeline quarantines each refusal with its raw bytes
    result = take(b.pipeline, b.config, "from-a", forged)  # type: ignore[arg-type]
    assert result.counts["quarantined"] == 1 and result.quarantined[0].reason == "peer:bad-signature"


def test_the_signature_verifies_with_a_standard_jose_library_on_its_own(hubs: dict[str, Hub]) -> None:
    private, public = new_keypair()
    signed = envelope("hub-a", {"type": "bundle", "id": "bundle--1", "objects": [indicator("x")]}, NOW)
    header, empty, signature = sign(signed, private, "hub-a").split(".")
    assert empty == ""  # detached
    # Put the JCS bytes back between the dots, as RFC 7515 appendix F says, and verify with jwcrypto alone
    import base64

    payload = base64.urlsafe_b64encode(canonical(signed)).rstrip(b"=").decode()
    token = jws.JWS()
    token.deserialize(f"{header}.{payload}.{signature}")
    token.verify(jwk.JWK.from_pem(public))
    assert orjson.loads(token.payload) == signed


def test_a_relayed_object_whose_hop_list_holds_this_hub_is_withheld_everywhere(hubs: dict[str, Hub]) -> None:
    # A new version arrives at A through a peer, but it has been at A before (hub-a on its hop list)
    a, b = hubs["a"], hubs["b"]
    a.configure({
        "hub": {"id": "hub-a"},
        "communities": [community("power-isac")],
        "connectors": [{"id": "from-b", "type": "peer", "public_key_env": "HUB_B_PUBLIC",
                        "scope": {"share_with": "all"}}],
    })  # fmt: skip
    looped = indicator("been-here")
    looped["extensions"] = {RENKEI_EXTENSION_ID: {"extension_type": "property-extension", "tlp": "GREEN",
                            "scope": {"share_with": "all", "exclude": []}, "hops": ["hub-a", "hub-b"]}}  # fmt: skip
    signed = envelope("hub-b", {"type": "bundle", "id": "bundle--9", "objects": [looped]})
    intake = receive(
        a.config.connectors[0], orjson.dumps(signed), {"X-Renkei-Signature": sign(signed, b.key, "hub-b")}, a.state
    )  # type: ignore[arg-type]
    result = take(a.pipeline, a.config, "from-b", intake)  # type: ignore[arg-type]
    assert result.counts["withheld"] == 1 and a.received == {}
    assert {d.reason for d in result.decisions} == {"loop:hub-in-hop-list"}
