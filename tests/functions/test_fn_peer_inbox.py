# ruff: noqa: F811 - pytest fixtures imported from the handler tests are redefined as parameters
"""The API function's peer inbox: a partner hub's signed bundle is verified at the door, then routed by the router
from its queue (so a failed run is retried, never lost); forged and replayed bundles are quarantined at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import requests

from connectors.peer.outbound import SIGNATURE_HEADER, envelope
from connectors.peer.signing import new_keypair, sign
from functions import localrun, wiring
from functions.api import handler as api
from functions.router import handler as router
from local.http_adapter import serve_api
from schemas.config import HubConfig
from tests.functions.test_fn_handlers import (  # noqa: F401 - fixtures
    Aws,
    Routing,
    aws,
    drop,
    fresh,
    hub,
    hub_config,
    routing,
    tasks,
)
from tests.unit.stixdata import indicator

pytestmark = pytest.mark.integration
PRIVATE, PUBLIC = new_keypair()
OTHER_PRIVATE, _ = new_keypair()


@pytest.fixture
def inbox(hub: wiring.Wiring, routing: Routing, drop: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("PARTNER_KEY", PUBLIC.decode())
    config = hub_config(drop).model_dump(mode="json", exclude_none=True)
    config["connectors"].append({"id": "partner-inbox", "type": "peer", "public_key_env": "PARTNER_KEY",
                                 "sender": {"org": "Partner hub"}, "tlp": "GREEN"})  # fmt: skip
    routing.change(HubConfig.model_validate(config))
    server = serve_api(lambda event, _: api.lambda_handler(event, localrun.LocalContext("renkei-api")))
    yield f"http://127.0.0.1:{server.server_address[1]}/peer/inbox"
    server.shutdown()


def post(url: str, objects: list[dict[str, object]], key: bytes = PRIVATE) -> tuple[requests.Response, bytes]:
    signed = envelope("partner-hub", {"type": "bundle", "id": "bundle--7d3e1f60-0000-4000-8000-000000000001",
                                      "objects": objects})  # fmt: skip
    body = orjson.dumps(signed)
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(signed, key, "partner-hub")}
    return requests.post(url, data=body, headers=headers, timeout=10), body


def test_a_verified_bundle_is_queued_for_the_router_which_routes_it(inbox: str, aws: Aws, hub: wiring.Wiring) -> None:
    obj = indicator(fresh("relayed"))
    answer, _ = post(inbox, [obj])
    assert answer.status_code == 202 and answer.json() == {"queued": 1}
    assert tasks(aws) == {}  # nothing routed at the door
    handled, failed = localrun.drain_once(hub.sqs, aws.queues["envelopes"], router.lambda_handler)
    assert (handled, failed) == (1, 0)
    routed = tasks(aws)
    assert routed and all(obj["id"] in orjson.dumps(t).decode() for t in routed.values())
    assert hub.state is not None
    [record] = hub.state.history(obj["id"])
    assert record.connector == "partner-inbox"


def test_forged_and_replayed_bundles_are_quarantined_at_the_door_and_never_queued(
    inbox: str, aws: Aws, hub: wiring.Wiring
) -> None:
    forged, _ = post(inbox, [indicator(fresh("forged"))], key=OTHER_PRIVATE)
    assert forged.status_code == 400 and forged.json() == {"refused": "peer:bad-signature"}
    good, body = post(inbox, [indicator(fresh("once"))])
    assert good.status_code == 202
    signature = good.request.headers[SIGNATURE_HEADER]
    replay = requests.post(inbox, data=body, headers={"Content-Type": "application/json",
                                                      SIGNATURE_HEADER: signature}, timeout=10)  # fmt: skip
    assert replay.status_code == 400 and replay.json() == {"refused": "peer:replay"}
    assert localrun.drain_once(hub.sqs, aws.queues["envelopes"], router.lambda_handler) == (1, 0)  # the good one
    assert hub.state is not None
    reasons = [q.reason for q in hub.state.quarantined() if q.connector == "partner-inbox"]
    assert "peer:bad-signature" in reasons and "peer:replay" in reasons
