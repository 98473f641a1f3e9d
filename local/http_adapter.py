"""A small HTTP server that hands each request to an API Gateway handler as AWS would (a REST proxy event),
so `gateway serve` and the tests run the same HTTP code as API Gateway + Lambda."""

from __future__ import annotations

import base64
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY_BYTES = 10 * 1024 * 1024
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def serve_api(handler: Handler, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Started in a daemon thread; `shutdown()` stops it. `server_address` has the port chosen."""
    server = ThreadingHTTPServer((host, port), _request_handler(handler))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _request_handler(handler: Handler) -> type[BaseHTTPRequestHandler]:
    class Proxy(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self.send_response(413)
                self.end_headers()
                return
            body = self.rfile.read(length) if length else b""
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
            event = {
                "resource": url.path, "path": url.path, "httpMethod": self.command,
                "headers": dict(self.headers.items()), "multiValueHeaders": {},
                "queryStringParameters": query or None, "multiValueQueryStringParameters": None,
                "pathParameters": None, "stageVariables": None,
                "requestContext": {"httpMethod": self.command, "path": url.path, "stage": "local",
                                   "requestId": "local"},
                "body": base64.b64encode(body).decode() if body else None, "isBase64Encoded": bool(body),
            }  # fmt: skip
            answer = handler(event, None)
            self.send_response(int(answer.get("statusCode", 500)))
            for name, value in (answer.get("headers") or {}).items():
                self.send_header(name, str(value))
            for name, values in (answer.get("multiValueHeaders") or {}).items():
                for value in values:
                    self.send_header(name, str(value))
            self.end_headers()
            payload = answer.get("body") or ""
            self.wfile.write(base64.b64decode(payload) if answer.get("isBase64Encoded") else str(payload).encode())

        do_GET = do_POST = do_DELETE = _handle

        def log_message(self, *args: Any) -> None:
            pass

    return Proxy
