"""Fault injection for the handler tests: a peer inbox on 127.0.0.1 that can be down, DynamoDB throttling at
botocore's transport, and a worker that dies in the middle of a batch."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from botocore.awsrequest import AWSResponse

from connectors.peer.outbound import SIGNATURE_HEADER
from connectors.peer.signing import verify
from gateway.model import DEFINITION_TYPES


class PeerInboxes:
    """Peer hubs' inboxes on 127.0.0.1, one path per destination (`/d1`, ...): they verify each envelope's
    signature and record which objects arrived where. `down` makes every inbox answer 503."""

    def __init__(self, public_key_pem: bytes) -> None:
        self.down = False
        self.refused = 0  # answers 503 while down
        self.received: list[tuple[str, dict[str, Any]]] = []  # (path without "/", bundle), in arrival order
        self._lock = threading.Lock()
        inboxes = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with inboxes._lock:
                    if inboxes.down:
                        inboxes.refused += 1
                        self.send_response(503)
                        self.end_headers()
                        return
                    envelope = verify(body, self.headers.get(SIGNATURE_HEADER, ""), public_key_pem)
                    inboxes.received.append((self.path.strip("/"), envelope["bundle"]))
                self.send_response(202)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> PeerInboxes:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def copies(self) -> Counter[tuple[str, str]]:
        """How many times each (destination, content object id) arrived."""
        with self._lock:
            return Counter(
                (dest, o["id"])
                for dest, bundle in self.received
                for o in bundle["objects"]
                if o.get("type") not in DEFINITION_TYPES and o.get("type") != "identity"
            )


def _error_response(request: Any, code: str, status: int) -> AWSResponse:
    # the JSON protocol's error shape, as DynamoDB and SQS answer
    body = orjson.dumps({"__type": f"com.amazonaws.aws#{code}", "message": "Rate exceeded"})

    class Raw:
        def stream(self, **_: Any) -> Iterator[bytes]:
            yield body

    headers = {"x-amzn-ErrorType": code, "Content-Type": "application/x-amz-json-1.0"}
    return AWSResponse(request.url, status, headers, Raw())


class Refuse:
    """Answers `times` calls (after the first `after`) of `operations` with an error, as AWS does when throttling
    (`ProvisionedThroughputExceededException`, 400) or unavailable (`ServiceUnavailable`, 503).

    Injected at botocore's transport (`before-send`), so the client's own retries (standard mode)
    see and retry each refusal: `times` must outlast them (`max_attempts` 4 retries: 5 calls) for a handler to see it.
    """

    def __init__(
        self, client: Any, operations: set[str], times: int, code: str, status: int = 400, after: int = 0
    ) -> None:
        self.left = times
        self.skip = after  # calls let through first
        self.refused: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self._code, self._status = code, status
        service = client.meta.service_model.service_id.hyphenize()
        for operation in operations:
            client.meta.events.register(f"before-send.{service}.{operation}", self._maybe(operation))

    def _maybe(self, operation: str) -> Callable[..., AWSResponse | None]:
        def before_send(request: Any, **_: Any) -> AWSResponse | None:
            self.calls[operation] += 1
            if self.skip > 0:
                self.skip -= 1
                return None
            if self.left <= 0:
                return None
            self.left -= 1
            self.refused[operation] += 1
            return _error_response(request, self._code, self._status)

        return before_send


class WorkerDied(BaseException):
    """The process ends here (killed, out of memory, timed out): no `except Exception` sees it, nothing cleans up."""
