"""Servers that get TAXII wrong: a looping `next`, 429 before an answer, HTML instead of an envelope."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from connectors.taxii.source import ServerMisbehaves, TaxiiSource
from gateway.memory import InMemoryStateStore
from schemas.config import TaxiiConnector

OBJ = {"type": "indicator", "spec_version": "2.1", "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
       "created": "2026-11-20T00:00:00.000Z", "modified": "2026-11-20T00:00:00.000Z",
       "pattern": "[ipv4-addr:value = '203.0.113.9']", "pattern_type": "stix",
       "valid_from": "2026-11-20T00:00:00Z"}  # fmt: skip


class Server(BaseHTTPRequestHandler):
    mode = "loop"
    calls: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).calls.append(self.path)
        if "/objects/" not in self.path:  # the collection's information, as taxii2-client asks for it
            return self._send(200, "application/taxii+json;version=2.1", {"id": "c1", "title": "c", "can_read": True,
                                                                          "can_write": False})  # fmt: skip
        if self.mode == "html":
            return self._send(200, "text/html", None, b"<html>maintenance</html>")
        if self.mode == "429" and len([c for c in type(self).calls if "/objects/" in c]) < 3:
            return self._send(
                429, "application/taxii+json;version=2.1", {"title": "slow down"}, headers={"Retry-After": "0"}
            )
        if self.mode == "loop":  # always the same page, always more
            return self._send(200, "application/taxii+json;version=2.1", {"more": True, "next": "n1", "objects": [OBJ]})
        return self._send(200, "application/taxii+json;version=2.1", {"more": False, "objects": [OBJ]},
                          headers={"X-TAXII-Date-Added-Last": "2026-11-21T00:00:00.000Z"})  # fmt: skip

    def _send(
        self, code: int, media: str, body: Any, raw: bytes | None = None, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", media)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw if raw is not None else json.dumps(body).encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Server.calls = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Server)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/api1/"
    httpd.shutdown()


def source(url: str, state: InMemoryStateStore) -> TaxiiSource:
    return TaxiiSource(TaxiiConnector(id="isac", type="taxii", url=url, collection="c1"), state)


def test_a_server_whose_next_loops_gets_a_clear_error_not_an_endless_run(server: str) -> None:
    Server.mode = "loop"
    state = InMemoryStateStore()
    with pytest.raises(ServerMisbehaves, match="returned a page it had returned before"):
        list(source(server, state).read(None))
    assert state.get_cursor("taxii:isac") is None  # and the cursor did not move


def test_429_is_retried_and_the_cursor_is_the_servers_date_added(server: str) -> None:
    Server.mode = "429"
    state = InMemoryStateStore()
    intakes = list(source(server, state).read(None))
    assert [i.objects for i in intakes] == [[OBJ]]
    assert state.get_cursor("taxii:isac") == {"added_after": "2026-11-20T23:59:59.999000Z"}


def test_html_instead_of_an_envelope_is_refused_clearly(server: str) -> None:
    Server.mode = "html"
    with pytest.raises(ServerMisbehaves, match="not a TAXII answer"):
        list(source(server, InMemoryStateStore()).read(None))
