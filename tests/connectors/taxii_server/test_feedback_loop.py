"""The give-and-take loop end to end: Finance ISAC (a real medallion server) publishes, `gateway serve` pulls and
routes to Power ISAC's collection, a Power ISAC member reads it and answers "not seen" with taxii2-client, and
the answer lands in Finance ISAC's collection, as the hub's sighting, and nowhere else."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from taxii2client.v21 import Collection, Server

from connectors.taxii_server.server import collection_id, feedback_collection_id
from tests.connectors.taxii.conftest import COLLECTION, PASSWORD, USER, medallion  # noqa: F401 - the fixture
from tests.integration.test_serve import Served, gateway

pytestmark = pytest.mark.integration

CONFIG = """\
hub: {{id: hub-a, name: Cross-sector hub}}
communities:
  - id: finance-isac
    kind: isac
    deliver:
      - taxii:
          {{url: "{url}", collection: "{collection}", auth: {{username: {user}, password_env: FIN_TAXII_PASSWORD}}}}
  - id: power-isac
    kind: isac
    deliver: [{{pull: {{users: [{{username: power-co, password_env: POWER_PW}}]}}}}]
  - id: ict-isac
    kind: isac
    deliver: [{{pull: {{users: [{{username: ict-co, password_env: ICT_PW}}]}}}}]
connectors:
  - id: fin-taxii
    type: taxii
    url: "{url}"
    collection: "{collection}"
    every: 1m                         # serve polls at start, then every minute
    auth: {{username: {user}, password_env: FIN_TAXII_PASSWORD}}
    sender: {{org: Finance ISAC, community: finance-isac}}
    tlp: GREEN
    scope: {{share_with: [power-isac]}}
"""


def indicator() -> dict[str, object]:
    return {
        "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
        "created": "2026-11-20T00:00:00.000Z", "modified": "2026-11-20T00:00:00.000Z",
        "pattern": "[domain-name:value = 'c2.bad.example']", "pattern_type": "stix",
        "valid_from": "2026-11-20T00:00:00Z",
    }  # fmt: skip


PUBLISHED = indicator()


@pytest.fixture
def hub(medallion: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:  # noqa: F811
    finance = Collection(f"{medallion}collections/{COLLECTION}/", user=USER, password=PASSWORD)
    finance.add_objects({"objects": [PUBLISHED]}, wait_for_completion=True, poll_interval=0.2)  # Finance ISAC publishes
    monkeypatch.setenv("POWER_PW", "power-secret")
    monkeypatch.setenv("RENKEI_OPERATOR_TOKEN", "operator-token-of-this-test")
    monkeypatch.setenv("ICT_PW", "ict-secret")
    config = tmp_path / "gateway.yaml"
    config.write_text(CONFIG.format(url=medallion, collection=COLLECTION, user=USER))
    state = tmp_path / "state"
    onboarded = gateway("onboard", "--config", str(config), "--state", str(state))
    assert onboarded.returncode == 0, onboarded.stdout + onboarded.stderr
    process = Served("--state", str(state), "--port", "0", cwd=tmp_path)
    try:
        process.wait_for("serving hub-a")
        process.api = process.wait_for("HTTP API").rsplit(" ", 1)[1].strip()
        yield process
    finally:
        if process.process.poll() is None:
            process.process.kill()


def wait_for_objects(collection: Collection, timeout: float = 60.0) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = collection.get_objects().get("objects", [])
        if found:
            return list(found)
        time.sleep(0.5)
    raise AssertionError("nothing arrived")


def test_a_members_answer_goes_back_to_the_isac_that_published_and_only_there(hub: Served, medallion: str) -> None:  # noqa: F811
    finance = Collection(f"{medallion}collections/{COLLECTION}/", user=USER, password=PASSWORD)
    published = PUBLISHED
    member = Server(f"{hub.api}/taxii2/", user="power-co", password="power-secret").api_roots[0]
    collections = {c.id: c for c in member.collections}
    received = wait_for_objects(collections[collection_id("power-isac")])
    assert [o["id"] for o in received] == [published["id"]]

    answer = {
        "type": "sighting", "spec_version": "2.1", "id": f"sighting--{uuid.uuid4()}", "count": 0,
        "created": "2026-11-21T00:00:00.000Z", "modified": "2026-11-21T00:00:00.000Z",
        "sighting_of_ref": published["id"],
    }  # fmt: skip
    status = collections[feedback_collection_id("power-isac")].add_objects({"objects": [answer]})
    assert (status.status, status.success_count, status.failure_count) == ("complete", 1, 0), status.failures

    back = [o for o in finance.get_objects(type="sighting").get("objects", []) if o["type"] == "sighting"]
    assert [(s["sighting_of_ref"], s["count"]) for s in back] == [(published["id"], 0)]
    assert back[0]["created_by_ref"] != answer.get("created_by_ref")  # the hub's sighting, not the member's
    ict = Server(f"{hub.api}/taxii2/", user="ict-co", password="ict-secret").api_roots[0]
    ict_collection = next(c for c in ict.collections if c.id == collection_id("ict-isac"))
    assert ict_collection.get_objects().get("objects", []) == []  # neither the indicator nor the answer
    # serve stored the operator token's hash too: the approvals endpoint answers the operator only
    operator = {"Authorization": "Bearer operator-token-of-this-test"}
    assert requests.get(f"{hub.api}/pending", headers=operator, timeout=10).json() == {"pending": []}
    assert requests.get(f"{hub.api}/pending", timeout=10).status_code == 401
    assert hub.stop() == 0
