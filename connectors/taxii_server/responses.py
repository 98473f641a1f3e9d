"""TAXII 2.1 responses: its media type, and error bodies (spec 3.6.1) that never echo what a client sent."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response

TAXII = "application/taxii+json;version=2.1"
STIX = "application/stix+json;version=2.1"


def taxii(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(status, TAXII, json.dumps(body), headers=headers or {})


def error(status: int, title: str, description: str) -> Response:
    return taxii(status, {"title": title, "description": description, "http_status": str(status)})


def unauthorized() -> Response:
    response = error(401, "Unauthorized", "give the credentials of a member organisation")
    response.headers["WWW-Authenticate"] = 'Basic realm="renkei"'
    return response


def accepts_taxii(accept: str) -> bool:
    """Whether an Accept header admits the TAXII 2.1 media type (absent or */* does)."""
    if not accept.strip():
        return True
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        params = part.lower().replace(" ", "")
        if media in ("*/*", "application/*"):
            return True
        if media == "application/taxii+json" and ("version=" not in params or "version=2.1" in params):
            return True
    return False


def is_taxii(content_type: str) -> bool:
    media, _, params = content_type.partition(";")
    version = params.replace(" ", "").lower()
    return media.strip().lower() == "application/taxii+json" and (not version or version == "version=2.1")
