"""Renkei's own TAXII 2.1 server, served through the HTTP adapter on 127.0.0.1 and read with taxii2-client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from connectors.aws.collections import CollectionStore
from connectors.taxii_server.server import ServerContext, build_app, collection_id
from local.embedded import EmbeddedAws
from local.http_adapter import serve_api
from schemas.config import HubConfig


def pulled_by(community: str, user: str, env: str) -> dict[str, Any]:
    return {
        "id": community,
        "kind": "isac",
        "deliver": [{"pull": {"users": [{"username": user, "password_env": env}]}}],
    }


CONFIG = {
    "hub": {"id": "hub-a", "name": "Cross-sector hub"},
    "communities": [pulled_by("power-isac", "power-co", "POWER_PW"), pulled_by("ict-isac", "ict-co", "ICT_PW")],
}


def indicator(n: int) -> dict[str, Any]:
    return {
        "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid5(uuid.NAMESPACE_URL, str(n))}",
        "created": "2026-11-20T00:00:00.000Z", "modified": "2026-11-20T00:00:00.000Z",
        "pattern": f"[ipv4-addr:value = '203.0.113.{n}']", "pattern_type": "stix", "valid_from": "2026-11-20T00:00:00Z",
    }  # fmt: skip


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, CollectionStore]]:
    with EmbeddedAws() as aws:
        mp = pytest.MonkeyPatch()
        mp.setenv("POWER_PW", "power-secret")
        mp.setenv("ICT_PW", "ict-secret")
        store = CollectionStore(aws.table_name("objects"), aws.dynamodb)
        store.add("power-isac", [indicator(n) for n in range(23)])
        store.add("ict-isac", [indicator(100)])
        context = ServerContext(HubConfig.model_validate(CONFIG), store, b"c" * 32)
        app = build_app(lambda: context)
        server = serve_api(lambda event, ctx: app.resolve(event, ctx))
        yield f"http://127.0.0.1:{server.server_address[1]}", store
        server.shutdown()
        mp.undo()


def test_a_member_discovers_its_collection_and_pages_through_it_with_taxii2_client(served: tuple[str, Any]) -> None:
    base, _ = served
    server = Server(f"{base}/taxii2/", user="power-co", password="power-secret")
    root = server.api_roots[0]
    assert isinstance(root, ApiRoot) and [c.id for c in root.collections] == [collection_id("power-isac")]
    collection = root.collections[0]
    pages = list(as_pages(collection.get_objects, per_request=10))
    assert [len(p.get("objects", [])) for p in pages] == [10, 10, 3]
    ids = [o["id"] for p in pages for o in p["objects"]]
    assert len(set(ids)) == 23 and indicator(100)["id"] not in ids  # only its own community's objects


def test_another_members_collection_bad_credentials_and_forged_cursors_are_refused(served: tuple[str, Any]) -> None:
    base, _ = served
    power = collection_id("power-isac")
    ict = Collection(f"{base}/api/collections/{power}/", user="ict-co", password="ict-secret")
    with pytest.raises(requests.HTTPError) as other:
        ict.get_objects()
    assert other.value.response.status_code == 404
    wrong = requests.get(f"{base}/api/collections/", auth=("power-co", "nope"), timeout=10)
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Basic")
    forged = requests.get(f"{base}/api/collections/{power}/objects/", params={"next": "AAAAforged"},
                          auth=("power-co", "power-secret"), timeout=10)  # fmt: skip
    assert forged.status_code == 400 and forged.json()["title"] == "Bad next"
    assert forged.headers["Content-Type"].startswith("application/taxii+json")
