"""Renkei's own TAXII 2.1 server (read side), as one Powertools event-handler app: discovery, the API root, the
collections a member may see, and their objects with `added_after`, `limit`, `next` and `match[type]`.

One collection per community with a `pull` channel, holding exactly what routing delivered to it. Each
member organisation signs in with its own credentials and sees only its community's collection.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from connectors.aws.collections import CollectionStore
from connectors.taxii_server.cursor import CursorForged, decode, encode
from schemas.config import Community, HubConfig, PullChannel

TAXII = "application/taxii+json;version=2.1"
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://renkei.invalid/ns/taxii-collection")
MAX_LIMIT = 1000


def collection_id(community_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, community_id))


@dataclass
class ServerContext:
    config: HubConfig
    collections: CollectionStore
    cursor_key: bytes
    base_path: str = ""


def build_app(context: Callable[[], ServerContext]) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver()

    @app.get("/health")
    def health() -> Response:
        return Response(200, "application/json", json.dumps({"status": "ok"}))

    @app.get("/taxii2/")
    def discovery() -> Response:
        ctx = context()
        if _member(app, ctx) is None:
            return _unauthorized()
        root = f"{ctx.base_path}/api/"
        return _taxii(200, {"title": ctx.config.hub.name or ctx.config.hub.id, "default": root, "api_roots": [root]})

    @app.get("/api/")
    def api_root() -> Response:
        ctx = context()
        if _member(app, ctx) is None:
            return _unauthorized()
        return _taxii(200, {"title": ctx.config.hub.name or ctx.config.hub.id, "versions": [TAXII],
                            "max_content_length": 10 * 1024 * 1024})  # fmt: skip

    @app.get("/api/collections/")
    def collections() -> Response:
        ctx = context()
        community = _member(app, ctx)
        if community is None:
            return _unauthorized()
        return _taxii(200, {"collections": [_collection(community)]})

    def members_collection(ctx: ServerContext, cid: str) -> Community | Response:
        """The member's community if `cid` is its collection; else the TAXII error to answer with."""
        community = _member(app, ctx)
        if community is None:
            return _unauthorized()
        if cid != collection_id(community.id):
            return _error(404, "Unknown collection", "no such collection for this member")
        return community

    @app.get("/api/collections/<cid>/")
    def collection(cid: str) -> Response:
        community = members_collection(context(), cid)
        return community if isinstance(community, Response) else _taxii(200, _collection(community))

    @app.get("/api/collections/<cid>/objects/")
    def objects(cid: str) -> Response:
        ctx = context()
        community = members_collection(ctx, cid)
        if isinstance(community, Response):
            return community
        query = app.current_event.query_string_parameters or {}
        try:
            limit = max(1, min(int(query.get("limit", "100")), MAX_LIMIT))
        except ValueError:
            return _error(400, "Bad limit", "limit must be a number")
        after: str | None = None
        if query.get("next"):
            try:
                after = decode(query["next"], ctx.cursor_key)
            except CursorForged as forged:
                return _error(400, "Bad next", str(forged))
        elif query.get("added_after"):
            after = query["added_after"]  # keys start with the date added: everything after that instant
        types = frozenset(t for t in query.get("match[type]", "").split(",") if t)
        page, last, more = ctx.collections.page(community.id, after, limit, types)
        ids = frozenset(i for i in query.get("match[id]", "").split(",") if i)
        found = [obj for _, obj in page if not ids or obj.get("id") in ids]
        body: dict[str, Any] = {"more": more}
        if found:
            body["objects"] = found
        if more and last:
            body["next"] = encode(last, ctx.cursor_key)
        headers = {}
        if page:
            headers = {"X-TAXII-Date-Added-First": page[0][0], "X-TAXII-Date-Added-Last": page[-1][0]}
        return _taxii(200, body, headers)

    return app


def _member(app: APIGatewayRestResolver, ctx: ServerContext) -> Community | None:
    """The community of the member whose Basic credentials came with the request; None if they are wrong."""
    header = (app.current_event.headers or {}).get("Authorization") or (app.current_event.headers or {}).get(
        "authorization", ""
    )
    if not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    for community in ctx.config.communities:
        for channel in community.deliver:
            if not isinstance(channel, PullChannel):
                continue
            for member in channel.pull.users:
                expected = os.environ.get(member.password_env)
                if member.username == user and expected and hmac.compare_digest(expected, password):
                    return community
    return None


def _collection(community: Community) -> dict[str, Any]:
    return {
        "id": collection_id(community.id), "title": community.name or community.id, "can_read": True,
        "can_write": False, "media_types": ["application/stix+json;version=2.1"],
    }  # fmt: skip


def _taxii(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(status, TAXII, json.dumps(body), headers=headers or {})


def _error(status: int, title: str, description: str) -> Response:
    return _taxii(status, {"title": title, "description": description, "http_status": str(status)})


def _unauthorized() -> Response:
    response = _error(401, "Unauthorized", "give the credentials of a member organisation")
    response.headers["WWW-Authenticate"] = 'Basic realm="renkei"'
    return response
