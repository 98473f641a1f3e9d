"""Renkei's own TAXII 2.1 server, as one Powertools event-handler app (API Gateway on AWS, `serve` locally).

Each community with a `pull` channel has two collections: its objects (read-only: exactly what routing
delivered to it) and its feedback collection (write-only: sightings of what it received, relayed to each
object's sender and nowhere else). Each member organisation signs in with its own credentials, checked
against the salted hashes in state, and sees only its community's collections. Paging is stateless: the
`next` cursor is a signed position in the by-date-added index, so any invocation can serve any page.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from connectors.aws.collections import CollectionStore, object_version
from connectors.taxii_server import status as statuses
from connectors.taxii_server.credentials import Logins
from connectors.taxii_server.cursor import encode
from connectors.taxii_server.filters import BadQuery, Query, read_query, timestamp
from connectors.taxii_server.responses import STIX, TAXII, accepts_taxii, error, is_taxii, taxii, unauthorized
from gateway.feedback import Outcome
from gateway.ports import BlobStore, StateStore
from schemas.config import Community, HubConfig

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://renkei.invalid/ns/taxii-collection")
# API Gateway refuses bodies over 10 MB; a POST must fit in one request with room for headers.
MAX_CONTENT_LENGTH = 9 * 1024 * 1024
MAX_POSTED_OBJECTS = 1000

# Relays a member community's posted sightings to their senders: (community, objects, input name) -> outcomes.
FeedbackRelay = Callable[[str, list[Any], str], list[Outcome]]


def collection_id(community_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, community_id))


def feedback_collection_id(community_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "feedback|" + community_id))


@dataclass
class ServerContext:
    config: HubConfig
    collections: CollectionStore
    cursor_key: bytes
    state: StateStore
    blobs: BlobStore | None = None  # POSTed bodies are kept here before anything else happens
    feedback: FeedbackRelay | None = None
    logins: Logins = field(init=False)
    base_path: str = ""

    def __post_init__(self) -> None:
        self.logins = Logins(self.state)


def build_app(context: Callable[[], ServerContext]) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver()

    def header(name: str) -> str:
        headers = app.current_event.headers or {}
        return next((str(v) for k, v in headers.items() if k.lower() == name), "")

    def member(ctx: ServerContext) -> Community | Response:
        """The signed-in member's community, or the error to answer with."""
        if not accepts_taxii(header("accept")):
            return error(406, "Not acceptable", f"this server answers with {TAXII}")
        community_id = _basic_login(ctx, header("authorization"))
        community = ctx.config.community(community_id) if community_id else None
        return community if community is not None else unauthorized()

    def collection_of(ctx: ServerContext, cid: str, write: bool = False) -> Community | Response:
        """The member's community if `cid` is one of its collections and allows the operation."""
        community = member(ctx)
        if isinstance(community, Response):
            return community
        if cid == collection_id(community.id):
            return community if not write else error(403, "Read only", "this collection cannot be written to")
        if cid == feedback_collection_id(community.id):
            return community if write else error(403, "Write only", "post sightings here; they are not readable")
        return error(404, "Unknown collection", "no such collection for this member")

    def query(ctx: ServerContext) -> Query | Response:
        try:
            return read_query(app.current_event.query_string_parameters or {}, ctx.cursor_key)
        except BadQuery as bad:
            return error(400, "Bad query", str(bad))

    @app.get("/health")
    def health() -> Response:
        return Response(200, "application/json", json.dumps({"status": "ok"}))

    @app.get("/taxii2/")
    def discovery() -> Response:
        ctx = context()
        community = member(ctx)
        if isinstance(community, Response):
            return community
        root = f"{ctx.base_path}/api/"
        return taxii(200, {"title": ctx.config.hub.name or ctx.config.hub.id, "default": root, "api_roots": [root]})

    @app.get("/api/")
    def api_root() -> Response:
        ctx = context()
        community = member(ctx)
        if isinstance(community, Response):
            return community
        return taxii(200, {"title": ctx.config.hub.name or ctx.config.hub.id, "versions": [TAXII],
                           "max_content_length": MAX_CONTENT_LENGTH})  # fmt: skip

    @app.get("/api/collections/")
    def collections() -> Response:
        community = member(context())
        if isinstance(community, Response):
            return community
        return taxii(200, {"collections": list(_collections_of(community).values())})

    @app.get("/api/collections/<cid>/")
    def collection(cid: str) -> Response:
        ctx = context()
        community = member(ctx)
        if isinstance(community, Response):
            return community
        found = _collections_of(community).get(cid)
        return taxii(200, found) if found else error(404, "Unknown collection", "no such collection for this member")

    def scoped(ctx: ServerContext, cid: str) -> tuple[Community, Query] | Response:
        """The member's community and the query, for a read of one of its collections; else the error."""
        community = collection_of(ctx, cid)
        if isinstance(community, Response):
            return community
        q = query(ctx)
        return q if isinstance(q, Response) else (community, q)

    def page_of(cid: str, entry: Callable[[str, dict[str, Any]], dict[str, Any]]) -> Response:
        """One page of the by-date-added index, each object shown by `entry(date added, object)`."""
        ctx = context()
        scope = scoped(ctx, cid)
        if isinstance(scope, Response):
            return scope
        community, q = scope
        page, last, more = ctx.collections.page(
            community.id, q.after, q.limit, q.selector(lambda ids: ctx.collections.spans(community.id, ids))
        )
        body: dict[str, Any] = {"more": more}
        if page:
            body["objects"] = [entry(added, obj) for added, obj in page]
        if more and last:
            body["next"] = encode(last, ctx.cursor_key)
        return taxii(200, body, _added_headers([added for added, _ in page]))

    def versions_held(cid: str, oid: str) -> tuple[Query, list[tuple[str, dict[str, Any]]], str, str] | Response:
        """(query, the object's versions added after the query's point, first version, last version)."""
        ctx = context()
        scope = scoped(ctx, cid)
        if isinstance(scope, Response):
            return scope
        community, q = scope
        held = ctx.collections.versions_of(community.id, oid)
        if not held:
            return error(404, "Unknown object", "no object with that id in this collection")
        after = [(added, obj) for added, obj in held if not q.after or added > q.after.rstrip("~")]
        return q, after, object_version(held[0][1]), object_version(held[-1][1])

    @app.get("/api/collections/<cid>/objects/")
    def objects(cid: str) -> Response:
        return page_of(cid, lambda added, obj: obj)

    @app.get("/api/collections/<cid>/manifest/")
    def manifest(cid: str) -> Response:
        return page_of(
            cid,
            lambda added, obj: {
                "id": obj["id"],
                "date_added": added,
                "version": object_version(obj),
                "media_type": STIX,
            },
        )

    @app.get("/api/collections/<cid>/objects/<oid>/")
    def object_by_id(cid: str, oid: str) -> Response:
        found = versions_held(cid, oid)
        if isinstance(found, Response):
            return found
        q, after, first, last = found
        chosen = [(added, obj) for added, obj in after if q.keeps_version(object_version(obj), first, last)][: q.limit]
        body: dict[str, Any] = {"more": False}
        if chosen:
            body["objects"] = [obj for _, obj in chosen]
        return taxii(200, body, _added_headers([added for added, _ in chosen]))

    @app.get("/api/collections/<cid>/objects/<oid>/versions/")
    def versions(cid: str, oid: str) -> Response:
        found = versions_held(cid, oid)
        if isinstance(found, Response):
            return found
        q, after, _, _ = found
        shown = after[: q.limit]
        body: dict[str, Any] = {"more": len(after) > len(shown)}
        if shown:
            body["versions"] = [object_version(obj) for _, obj in shown]
        return taxii(200, body, _added_headers([added for added, _ in shown]))

    @app.delete("/api/collections/<cid>/objects/<oid>/")
    def delete_object(cid: str, oid: str) -> Response:
        community = collection_of(context(), cid)
        if isinstance(community, Response):
            return community
        return error(403, "Read only", "members cannot delete what the hub delivered")

    @app.post("/api/collections/<cid>/objects/")
    def add_objects(cid: str) -> Response:
        ctx = context()
        community = collection_of(ctx, cid, write=True)
        if isinstance(community, Response):
            return community
        if not is_taxii(header("content-type")):
            return error(415, "Unsupported media type", f"post an envelope as {TAXII}")
        raw = (app.current_event.decoded_body or "").encode("utf-8", "surrogatepass")
        if len(raw) > MAX_CONTENT_LENGTH:
            return error(413, "Too large", f"the body is over max_content_length ({MAX_CONTENT_LENGTH} bytes)")
        try:
            envelope = json.loads(raw)
        except ValueError:
            return error(400, "Not JSON", "the body is not a TAXII envelope")
        posted = envelope.get("objects") if isinstance(envelope, dict) else None
        if not isinstance(posted, list) or not posted:
            return error(400, "Not an envelope", 'expected {"objects": [...]} with at least one object')
        if len(posted) > MAX_POSTED_OBJECTS:
            return error(413, "Too many objects", f"at most {MAX_POSTED_OBJECTS} objects per request")
        if ctx.feedback is None:
            return error(501, "Feedback not wired", "this server cannot relay feedback")
        name = f"taxii-post:{community.id}:{uuid.uuid4()}"
        if ctx.blobs is not None:  # the body as received, before anything else happens (it can be replayed)
            ctx.blobs.put(f"raw/feedback/{name.rsplit(':', 1)[1]}", raw)
        pending = statuses.pending_status(posted)
        statuses.save(ctx.state, community.id, pending)
        status = statuses.completed(pending, ctx.feedback(community.id, posted, name))
        statuses.save(ctx.state, community.id, status)
        return taxii(202, status)

    @app.get("/api/status/<sid>/")
    def status(sid: str) -> Response:
        ctx = context()
        community = member(ctx)
        if isinstance(community, Response):
            return community
        found = statuses.load(ctx.state, community.id, sid)
        return taxii(200, found) if found else error(404, "Unknown status", "no such status for this member")

    return app


def _basic_login(ctx: ServerContext, authorization: str) -> str | None:
    """The community of the member whose Basic credentials came with the request; None if they are wrong."""
    if not authorization.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(authorization[6:], validate=True).decode().partition(":")
    except (ValueError, binascii.Error):
        return None
    return ctx.logins.community_of(ctx.config, user, password)


def _added_headers(added: list[str]) -> dict[str, str]:
    if not added:
        return {}
    return {"X-TAXII-Date-Added-First": timestamp(min(added)), "X-TAXII-Date-Added-Last": timestamp(max(added))}


def _collections_of(community: Community) -> dict[str, dict[str, Any]]:
    """A member's two collections, by id: what it received, and where it answers."""
    return {c["id"]: c for c in (_collection(community), _feedback_collection(community))}


def _collection(community: Community) -> dict[str, Any]:
    return {
        "id": collection_id(community.id), "title": community.name or community.id,
        "description": "what the hub's routing delivered to this community", "can_read": True,
        "can_write": False, "media_types": [STIX],
    }  # fmt: skip


def _feedback_collection(community: Community) -> dict[str, Any]:
    return {
        "id": feedback_collection_id(community.id), "title": f"Feedback from {community.name or community.id}",
        "description": "post sightings (seen / not seen with count 0 / don't know) of objects you received; "
        "each goes to that object's sender only", "can_read": False, "can_write": True, "media_types": [STIX],
    }  # fmt: skip
