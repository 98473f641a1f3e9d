"""`GET /pending` and `POST /pending/{id}/approve`: approvals over HTTP.

Two ways in. A member approves its own held report with the one-time token of its confirmation mail
(`Authorization: Bearer <token>`), exactly as an `APPROVE <token>` reply would. The hub's operator lists what
waits and approves anything with the operator token (its sha256 is stored by `gateway onboard` from
`RENKEI_OPERATOR_TOKEN`), as `gateway approve` does. Listings never show content, only what waits and until when.
"""

from __future__ import annotations

import json

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from functions import wiring
from functions.runs import approve_pending
from gateway.approval import OPERATOR_TOKEN_CURSOR, verify_token


def register(app: APIGatewayRestResolver) -> None:
    def bearer() -> str:
        headers = app.current_event.headers or {}
        value = next((str(v) for k, v in headers.items() if k.lower() == "authorization"), "")
        return value[7:].strip() if value.startswith("Bearer ") else ""

    def is_operator(token: str) -> bool:
        state = wiring.current().state
        assert state is not None
        held = state.get_cursor(OPERATOR_TOKEN_CURSOR) or {}
        return bool(token) and verify_token(token, str(held.get("sha256", "")))

    @app.get("/pending")
    def pending() -> Response:
        if not is_operator(bearer()):
            return _answer(401, {"title": "Unauthorized", "description": "the operator token is required"})
        state = wiring.current().state
        assert state is not None
        items = [
            {"id": p.pending_id, "connector": p.connector, "created": p.created, "expires": p.expires,
             "objects": len(p.objects), "asked": bool(p.token_hash)}
            for p in sorted(state.pending(), key=lambda p: p.created)
        ]  # fmt: skip
        return _answer(200, {"pending": items})

    @app.post("/pending/<pending_id>/approve")
    def approve(pending_id: str) -> Response:
        token = bearer()
        state = wiring.current().state
        assert state is not None
        item = next((p for p in state.pending() if p.pending_id == pending_id), None)
        members_own = item is not None and verify_token(token, item.token_hash)
        if not token or not (members_own or is_operator(token)):
            # the same answer whether the id exists or not: a guess learns nothing
            return _answer(403, {"title": "Forbidden", "description": "this token does not approve that input"})
        result = approve_pending(wiring.current(), pending_id)
        if result is None:
            return _answer(404, {"title": "Not pending", "description": "approved already, expired, or unknown"})
        return _answer(200, {"approved": pending_id, "summary": result.summary()})


def _answer(status: int, body: dict[str, object]) -> Response:
    return Response(status, "application/json", json.dumps(body))
