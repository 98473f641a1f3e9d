"""Renkei's own TAXII 2.1 server, served through the HTTP adapter on 127.0.0.1 and read with taxii2-client."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from connectors.aws.collections import CollectionStore
from connectors.taxii_server.credentials import provision
from connectors.taxii_server.server import ServerContext, build_app, collection_id, feedback_collection_id
from gateway.feedback import Outcome
from local.embedded import EmbeddedAws
from local.http_adapter import serve_api
from schemas.config import HubConfig

TAXII = "application/taxii+json;version=2.1"


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
PASSWORDS = {"POWER_PW": "power-secret", "ICT_PW": "ict-secret"}


def indicator(n: int, modified: str = "2026-11-20T00:00:00.000Z") -> dict[str, Any]:
    return {
        "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid5(uuid.NAMESPACE_URL, str(n))}",
        "created": "2026-11-20T00:00:00.000Z", "modified": modified,
        "pattern": f"[ipv4-addr:value = '203.0.113.{n}']", "pattern_type": "stix", "valid_from": "2026-11-20T00:00:00Z",
    }  # fmt: skip


@dataclass
class Served:
    base: str
    store: CollectionStore
    context: ServerContext
    posted: list[tuple[str, list[Any]]]

    def collection(self, community: str, user: str, password: str, feedback: bool = False) -> Collection:
        cid = feedback_collection_id(community) if feedback else collection_id(community)
        return Collection(f"{self.base}/api/collections/{cid}/", user=user, password=password)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with EmbeddedAws() as aws:
        store = CollectionStore(aws.table_name("objects"), aws.dynamodb)
        store.add("power-isac", [indicator(n) for n in range(23)])
        store.add("ict-isac", [indicator(100)])
        store.add("power-isac", [indicator(200, "2026-11-20T00:00:00.000Z")])
        store.add("power-isac", [indicator(200, "2026-11-21T00:00:00.000Z")])
        config = HubConfig.model_validate(CONFIG)
        assert provision(config, aws.state, PASSWORDS) == []
        posted: list[tuple[str, list[Any]]] = []

        def relay(giver: str, objects: list[Any], name: str) -> list[Outcome]:
            posted.append((giver, objects))
            return [
                Outcome(str(o.get("id")), str(o.get("modified", "")), o.get("type") == "sighting", "ok")
                for o in objects
            ]

        context = ServerContext(config, store, b"c" * 32, aws.state, aws.blobs, relay)
        app = build_app(lambda: context)
        server = serve_api(lambda event, ctx: app.resolve(event, ctx))
        yield Served(f"http://127.0.0.1:{server.server_address[1]}", store, context, posted)
        server.shutdown()


def test_a_member_discovers_its_collections_and_pages_through_one_with_taxii2_client(served: Served) -> None:
    server = Server(f"{served.base}/taxii2/", user="power-co", password="power-secret")
    root = server.api_roots[0]
    assert isinstance(root, ApiRoot)
    by_id = {c.id: c for c in root.collections}
    assert set(by_id) == {collection_id("power-isac"), feedback_collection_id("power-isac")}
    objects, feedback = by_id[collection_id("power-isac")], by_id[feedback_collection_id("power-isac")]
    assert (objects.can_read, objects.can_write, feedback.can_read, feedback.can_write) == (True, False, False, True)
    pages = list(as_pages(objects.get_objects, per_request=10))
    assert [len(p.get("objects", [])) for p in pages] == [10, 10, 4]
    ids = [o["id"] for p in pages for o in p["objects"]]
    assert len(set(ids)) == 24 and indicator(100)["id"] not in ids  # only its own community's, last versions only


def test_resuming_with_added_after_from_the_last_page_header_skips_nothing(served: Served) -> None:
    auth = ("power-co", "power-secret")
    url = f"{served.base}/api/collections/{collection_id('power-isac')}/objects/"
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 7}
    for _ in range(10):
        page = requests.get(url, params=params, auth=auth, headers={"Accept": TAXII}, timeout=10)
        assert page.status_code == 200
        seen += [o["id"] for o in page.json().get("objects", [])]
        if not page.json()["more"]:
            break
        params = {"limit": 7, "added_after": page.headers["X-TAXII-Date-Added-Last"]}  # what a resuming client does
    assert len(seen) == len(set(seen)) == 24


def test_versions_object_by_id_and_manifest_follow_match_version(served: Served) -> None:
    coll = served.collection("power-isac", "power-co", "power-secret")
    twice = indicator(200)["id"]
    assert coll.object_versions(twice)["versions"] == ["2026-11-20T00:00:00.000Z", "2026-11-21T00:00:00.000Z"]
    assert [o["modified"] for o in coll.get_object(twice)["objects"]] == ["2026-11-21T00:00:00.000Z"]
    first = coll.get_object(twice, version="first")["objects"]
    assert [o["modified"] for o in first] == ["2026-11-20T00:00:00.000Z"]
    every = coll.get_objects(version="all", id=twice)["objects"]
    assert len(every) == 2
    exact = coll.get_objects(version="2026-11-21T00:00:00Z", id=twice)["objects"]  # same instant, other precision
    assert [o["modified"] for o in exact] == ["2026-11-21T00:00:00.000Z"]
    manifest = coll.get_manifest(id=twice)["objects"]
    assert [(m["id"], m["version"], m["media_type"]) for m in manifest] == [
        (twice, "2026-11-21T00:00:00.000Z", "application/stix+json;version=2.1")
    ]
    assert manifest[0]["date_added"].endswith("Z")
    with pytest.raises(requests.HTTPError) as missing:
        coll.get_object(indicator(100)["id"])  # in another community's collection only
    assert missing.value.response.status_code == 404


def test_other_collections_bad_credentials_forged_cursors_and_wrong_media_types_are_refused(served: Served) -> None:
    power = collection_id("power-isac")
    with pytest.raises(requests.HTTPError) as other:
        served.collection("power-isac", "ict-co", "ict-secret").get_objects()
    assert other.value.response.status_code == 404
    wrong = requests.get(f"{served.base}/api/collections/", auth=("power-co", "nope"), timeout=10)
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Basic")
    forged = requests.get(f"{served.base}/api/collections/{power}/objects/", params={"next": "AAAAforged"},
                          auth=("power-co", "power-secret"), timeout=10)  # fmt: skip
    assert forged.status_code == 400 and forged.json()["title"] == "Bad query"
    assert forged.headers["Content-Type"].startswith("application/taxii+json")
    xml = requests.get(f"{served.base}/api/collections/", auth=("power-co", "power-secret"),
                       headers={"Accept": "application/xml"}, timeout=10)  # fmt: skip
    assert xml.status_code == 406
    bad_time = requests.get(f"{served.base}/api/collections/{power}/objects/", params={"added_after": "yesterday"},
                            auth=("power-co", "power-secret"), timeout=10)  # fmt: skip
    assert bad_time.status_code == 400 and "yesterday" in bad_time.json()["description"]


def test_logins_are_kept_hashed_and_a_member_removed_from_the_config_is_locked_out(served: Served) -> None:
    held = served.context.state.get_cursor("taxii-user:power-co")
    assert held is not None and "power-secret" not in json.dumps(held) and held["scheme"] == "scrypt"
    config = served.context.config
    narrowed = HubConfig.model_validate({**CONFIG, "communities": [pulled_by("power-isac", "power-co", "POWER_PW"),
                                                                   {"id": "ict-isac", "kind": "isac",
                                                                    "deliver": [{"pull": {}}]}]})  # fmt: skip
    served.context.config = narrowed
    try:
        gone = requests.get(f"{served.base}/api/collections/", auth=("ict-co", "ict-secret"), timeout=10)
        assert gone.status_code == 401  # the hash is still in state; the config no longer names the login
    finally:
        served.context.config = config


def test_posting_sightings_to_the_feedback_collection_gives_a_status_listing_each_object(served: Served) -> None:
    feedback = served.collection("power-isac", "power-co", "power-secret", feedback=True)
    sighting = {
        "type": "sighting", "spec_version": "2.1", "id": f"sighting--{uuid.uuid4()}", "count": 0,
        "created": "2026-11-22T00:00:00.000Z", "modified": "2026-11-22T00:00:00.000Z",
        "sighting_of_ref": indicator(1)["id"],
    }  # fmt: skip
    not_a_sighting = indicator(999)
    status = feedback.add_objects({"objects": [sighting, not_a_sighting]}, wait_for_completion=False)
    assert status.status == "complete" and status.total_count == 2
    assert [s["id"] for s in status.successes] == [sighting["id"]]
    assert [f["id"] for f in status.failures] == [not_a_sighting["id"]]
    assert served.posted[-1][0] == "power-isac"
    again = requests.get(f"{served.base}/api/status/{status.id}/", auth=("power-co", "power-secret"), timeout=10)
    assert again.status_code == 200 and again.json()["failure_count"] == 1
    theirs = requests.get(f"{served.base}/api/status/{status.id}/", auth=("ict-co", "ict-secret"), timeout=10)
    assert theirs.status_code == 404  # a status is its poster's community's only


def test_posts_with_wrong_media_type_bad_bodies_or_to_read_only_collections_get_taxii_errors(served: Served) -> None:
    auth = ("power-co", "power-secret")
    feedback_url = f"{served.base}/api/collections/{feedback_collection_id('power-isac')}/objects/"
    read_only_url = f"{served.base}/api/collections/{collection_id('power-isac')}/objects/"
    cases = [
        (read_only_url, TAXII, b'{"objects": [{}]}', 403),
        (feedback_url, "application/json", b'{"objects": [{}]}', 415),
        (feedback_url, TAXII, b"not json", 400),
        (feedback_url, TAXII, b'{"objects": []}', 400),
        (feedback_url, TAXII, b"[1, 2]", 400),
    ]
    before = len(served.posted)
    for url, media, body, expected in cases:
        answer = requests.post(url, data=body, headers={"Content-Type": media}, auth=auth, timeout=10)
        assert answer.status_code == expected, (url, media, body)
        assert answer.json()["http_status"] == str(expected) and body.decode() not in answer.text
    assert len(served.posted) == before  # nothing refused reached the relay
    reading_feedback = requests.get(feedback_url, auth=auth, timeout=10)
    assert reading_feedback.status_code == 403
