"""The demo's other parties on 127.0.0.1: Finance ISAC's TAXII 2.1 server (a real medallion, memory backend, basic
auth) and a second Renkei hub as the partner hub abroad, whose peer inbox verifies the hub's signed bundles.

Nothing here is fake: the hub pushes with its `taxii` channel and POSTs with its `peer` channel, as in production;
only the URLs of examples/gateway.yaml are pointed here, in memory.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from connectors.peer.inbound import MAX_BODY_BYTES, receive
from connectors.peer.signing import new_keypair
from gateway.intake import take
from gateway.normalize import RENKEI_EXTENSION_ID
from gateway.pipeline import RunResult
from local.runtime import EmbeddedHub, embedded_hub
from schemas.config import HubConfig, PeerChannel, PeerConnector, TaxiiChannel, TaxiiConnector

TAXII_MEDIA = "application/taxii+json;version=2.1"
STIX_MEDIA = "application/stix+json;version=2.1"
PUBLISHER = "fin-isac-analysts"  # Finance ISAC's own account, that publishes to its collection
INBOX_PATH = "/peer/inbox"
LOCALHOST = "127.0.0.1"


# --- keys and secrets ----------------------------------------------------------------------------------------


def ed25519_keypair() -> tuple[str, str]:
    """(private PEM, public PEM), made fresh: no private key is ever on disk."""
    private, public = new_keypair()
    return private.decode(), public.decode()


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the demo's run; put back what was there before."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def demo_secrets(hub: HubConfig, partner: HubConfig) -> dict[str, str]:
    """The secrets the two configs name, generated: both hubs' Ed25519 keys and the TAXII password."""
    hub_private, hub_public = ed25519_keypair()
    partner_private, partner_public = ed25519_keypair()
    values: dict[str, str] = {}
    if hub.hub.signing_key_env:
        values[hub.hub.signing_key_env] = hub_private
    if partner.hub.signing_key_env:
        values[partner.hub.signing_key_env] = partner_private
    for community in hub.communities:
        for channel in community.deliver:
            if isinstance(channel, PeerChannel):
                values[channel.peer.public_key_env] = partner_public
            elif isinstance(channel, TaxiiChannel) and channel.taxii.auth is not None:
                values[channel.taxii.auth.password_env] = secrets.token_urlsafe(16)
    for connector in hub.connectors:
        if isinstance(connector, PeerConnector):
            values[connector.public_key_env] = partner_public
        elif isinstance(connector, TaxiiConnector) and connector.auth is not None:
            values.setdefault(connector.auth.password_env, secrets.token_urlsafe(16))
    for connector in partner.connectors:
        if isinstance(connector, PeerConnector):
            values[connector.public_key_env] = hub_public
    # Requests to 127.0.0.1 must not go to an HTTP(S)_PROXY of the user's environment.
    no_proxy = ",".join(p for p in (os.environ.get("NO_PROXY", ""), LOCALHOST) if p)
    values.update({"NO_PROXY": no_proxy, "no_proxy": no_proxy})
    return values


def pointed_here(config: HubConfig, taxii_api_root: str, peer_inbox: str) -> HubConfig:
    """The config with every TAXII URL at the local medallion and every peer channel at the partner's inbox.

    Connector and channel keep the same URL as each other, so the hub still sees them as one system (rule 11).
    """
    communities = []
    for community in config.communities:
        deliver = []
        for channel in community.deliver:
            if isinstance(channel, TaxiiChannel):
                channel = channel.model_copy(update={"taxii": channel.taxii.model_copy(update={"url": taxii_api_root})})
            elif isinstance(channel, PeerChannel):
                channel = channel.model_copy(update={"peer": channel.peer.model_copy(update={"url": peer_inbox})})
            deliver.append(channel)
        communities.append(community.model_copy(update={"deliver": deliver}))
    connectors = [
        c.model_copy(update={"url": taxii_api_root}) if isinstance(c, TaxiiConnector) else c for c in config.connectors
    ]
    return config.model_copy(update={"communities": communities, "connectors": connectors})


# --- Finance ISAC's TAXII 2.1 server -------------------------------------------------------------------------


@dataclass
class TaxiiServer:
    """A running medallion: its API root, the collection, and the accounts."""

    api_root: str
    collection_id: str
    users: dict[str, str]

    def collection(self, user: str) -> Any:
        from taxii2client.v21 import Collection

        url = f"{self.api_root}collections/{self.collection_id}/"
        return Collection(url, user=user, password=self.users[user])

    def publish(self, bundle: dict[str, Any]) -> int:
        """Finance ISAC adds objects to its own collection (as its analysts would); how many were added."""
        status = self.collection(PUBLISHER).add_objects({"objects": bundle["objects"]}, wait_for_completion=True)
        return int(status.success_count)

    def holdings(self) -> list[dict[str, Any]]:
        """Every version of every object in the collection, read back over TAXII (all pages)."""
        from taxii2client.v21 import as_pages

        objects: list[dict[str, Any]] = []
        for page in as_pages(self.collection(PUBLISHER).get_objects, per_request=100, version="all"):
            objects += page.get("objects") or []
        return objects


def _medallion_data(base: str, title: str, collection_id: str) -> dict[str, Any]:
    return {
        "/discovery": {"title": title, "default": f"{base}/api1/", "api_roots": [f"{base}/api1/"]},
        "api1": {
            "information": {"title": f"{title} sharing", "versions": [TAXII_MEDIA], "max_content_length": 10485760},
            "status": [],
            "collections": [
                {"id": collection_id, "title": f"{title} indicators", "can_read": True, "can_write": True,
                 "media_types": [STIX_MEDIA], "objects": [], "manifest": []},
            ],
        },
    }  # fmt: skip


def medallion_app(data: dict[str, Any], users: dict[str, str]) -> Any:
    """A Flask app of its own for each server: medallion's global one takes its blueprints only once."""
    try:
        import medallion
        from flask import Flask
    except ImportError as missing:
        raise RuntimeError("the demo's TAXII server needs medallion: pip install 'renkei[demo]'") from missing
    from medallion.exceptions import BackendError, ProcessingError

    _read_versions_of_stix_objects(medallion)
    app = Flask("medallion")
    medallion.register_blueprints(app)
    backend = {"module": "medallion.backends.memory_backend", "module_class": "MemoryBackend",
               "filename": io.StringIO(json.dumps(data))}  # fmt: skip
    config = {"users": users, "taxii": {"max_page_size": 100}, "backend": backend}
    for prop in ("users", "taxii", "backend"):
        medallion.set_config(app, prop, config)
    # medallion's TAXII-shaped error answers, registered on its global app only
    app.register_error_handler(500, medallion.handle_error)
    app.register_error_handler(ProcessingError, medallion.handle_processing_error)
    app.register_error_handler(BackendError, medallion.handle_backend_error)
    return app


def _read_versions_of_stix_objects(medallion: Any) -> None:
    """medallion 3.0.0 takes any `version` property for a manifest's version: a STIX object that has one (an
    extension-definition, which the hub sends with the objects that use it; software; x509-certificate) makes
    every read of the collection fail with a 500. Only manifest records (no `type`) have a TAXII `version`."""
    from medallion import common
    from medallion.backends import memory_backend
    from medallion.filters import basic_filter

    stock = common.find_att

    def find_att(obj: dict[str, Any]) -> Any:
        if "version" in obj and "type" in obj:
            return stock({k: v for k, v in obj.items() if k != "version"})
        return stock(obj)

    memory_backend.find_att = find_att  # type: ignore[attr-defined]
    basic_filter.find_att = find_att  # type: ignore[attr-defined]


@contextmanager
def taxii_server(title: str, collection_id: str, users: dict[str, str]) -> Iterator[TaxiiServer]:
    """medallion on 127.0.0.1 (a port the OS picks), until the block ends."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise, on stderr
    holder: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> Any:  # the app needs the port, chosen at bind
        return holder["app"](environ, start_response)

    server: BaseWSGIServer = make_server(LOCALHOST, 0, app, threaded=True)
    base = f"http://{LOCALHOST}:{server.server_port}"
    holder["app"] = medallion_app(_medallion_data(base, title, collection_id), users)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield TaxiiServer(f"{base}/api1/", collection_id, users)
    finally:
        server.shutdown()
        server.server_close()


# --- the partner hub -----------------------------------------------------------------------------------------


@dataclass
class PartnerHub:
    """A second Renkei hub, embedded (moto of its own, state of its own), with its peer inbox on 127.0.0.1."""

    hub: EmbeddedHub
    inbox_url: str = ""
    result: RunResult = field(default_factory=RunResult)
    bundles: int = 0  # envelopes whose signature verified
    refused: list[str] = field(default_factory=list)  # reasons of envelopes refused
    received: list[dict[str, Any]] = field(default_factory=list)  # objects of the verified envelopes
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def accept(self, body: bytes, headers: dict[str, str]) -> bool:
        """One POST to the inbox, as the hub's API would take it: verify, then the pipeline. True if accepted."""
        config = self.hub.config
        connector = next(c for c in config.connectors if isinstance(c, PeerConnector))
        with self._lock:  # one pipeline run at a time, as in `gateway serve`
            intake = receive(connector, body, headers, self.hub.aws.state)
            self.result.merge(take(self.hub.pipeline, config, connector.id, intake))
            if intake.refusal is not None:
                self.refused.append(intake.refusal.reason)
                return False
            self.bundles += 1
            self.received += intake.objects or []
            return True

    def delivered(self) -> dict[str, list[dict[str, Any]]]:
        """What each of the partner's communities holds now, read back from its collections."""
        return {c.id: self.hub.collections.objects(c.id) for c in self.hub.config.communities}


def _inbox_handler(partner: PartnerHub) -> type[BaseHTTPRequestHandler]:
    class Inbox(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if self.path != INBOX_PATH or length > MAX_BODY_BYTES:
                self.send_response(404 if self.path != INBOX_PATH else 413)
                self.end_headers()
                return
            accepted = partner.accept(self.rfile.read(length), dict(self.headers.items()))
            self.send_response(202 if accepted else 400)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    return Inbox


@contextmanager
def partner_hub(config: HubConfig, state_dir: Path) -> Iterator[PartnerHub]:
    """The partner hub on the embedded default, its inbox listening until the block ends."""
    with embedded_hub(config, state_dir) as hub:
        partner = PartnerHub(hub)
        server = ThreadingHTTPServer((LOCALHOST, 0), _inbox_handler(partner))
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        partner.inbox_url = f"http://{LOCALHOST}:{server.server_address[1]}{INBOX_PATH}"
        try:
            yield partner
        finally:
            server.shutdown()
            server.server_close()


def content(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects that carry intelligence: not the marking and extension definitions sent along with them."""
    return [o for o in objects if o.get("type") not in ("marking-definition", "extension-definition")]


def tlp_of(obj: dict[str, Any]) -> str | None:
    """The TLP a hub wrote into Renkei's extension of a delivered object."""
    ext = (obj.get("extensions") or {}).get(RENKEI_EXTENSION_ID) or {}
    return ext.get("tlp") if isinstance(ext, dict) else None


def scope_of(obj: dict[str, Any]) -> dict[str, Any]:
    ext = (obj.get("extensions") or {}).get(RENKEI_EXTENSION_ID) or {}
    scope = ext.get("scope") if isinstance(ext, dict) else None
    return scope if isinstance(scope, dict) else {}
