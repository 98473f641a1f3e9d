# ruff: noqa: F811 - pytest fixtures imported from the handler tests are redefined as parameters
"""The approvals endpoint of the API function: a member with its one-time token, the operator with its own."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
import requests

from functions import localrun, wiring
from functions.api import handler as api
from functions.runs import run_intakes
from gateway.approval import OPERATOR_TOKEN_CURSOR, new_token, token_hash
from gateway.intake import Intake
from local.http_adapter import serve_api
from schemas.config import EmailConnector
from tests.functions.test_fn_handlers import Aws, Routing, aws, drop, fresh, hub, routing  # noqa: F401 - fixtures
from tests.unit.stixdata import indicator

pytestmark = pytest.mark.integration
OPERATOR = "operator-token-for-tests-0123456789"


@pytest.fixture
def http(hub: wiring.Wiring) -> Iterator[str]:
    assert hub.state is not None
    hub.state.put_cursor(OPERATOR_TOKEN_CURSOR, {"sha256": token_hash(OPERATOR)})
    server = serve_api(lambda event, _: api.lambda_handler(event, localrun.LocalContext("renkei-api")))
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def held_report(hub: wiring.Wiring, routing: Routing) -> tuple[str, str]:
    """A member's report held for approval, asked with a token: (pending id, token)."""
    mailbox = routing.config.connector("mailbox")
    assert isinstance(mailbox, EmailConnector) and hub.state is not None
    intake = Intake("m1", b"raw", objects=[indicator(fresh("reported"))], member=mailbox.members[0])
    taken = run_intakes(hub, routing.config, "test:1", "mailbox", [intake])
    [item] = taken.pending
    token, digest = new_token()
    hub.state.put_pending(replace(item, token_hash=digest))
    return item.pending_id, token


def test_a_member_approves_its_own_report_once_with_the_token_of_its_mail(
    http: str,
    hub: wiring.Wiring,
    routing: Routing,
) -> None:
    pending_id, token = held_report(hub, routing)
    other_id, _ = held_report(hub, routing)
    assert requests.post(f"{http}/pending/{other_id}/approve", headers={"Authorization": f"Bearer {token}"},
                         timeout=10).status_code == 403  # its token opens its own report only  # fmt: skip
    answer = requests.post(f"{http}/pending/{pending_id}/approve", headers={"Authorization": f"Bearer {token}"},
                           timeout=10)  # fmt: skip
    assert answer.status_code == 200 and answer.json()["summary"]["delivered"] == 1
    again = requests.post(f"{http}/pending/{pending_id}/approve", headers={"Authorization": f"Bearer {token}"},
                          timeout=10)  # fmt: skip
    assert again.status_code == 403  # taken: the token no longer matches anything held


def test_the_operator_lists_what_waits_without_content_and_approves_any_of_it(
    http: str,
    hub: wiring.Wiring,
    routing: Routing,
) -> None:
    pending_id, _ = held_report(hub, routing)
    assert requests.get(f"{http}/pending", timeout=10).status_code == 401
    assert requests.get(f"{http}/pending", headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
    listed = requests.get(f"{http}/pending", headers={"Authorization": f"Bearer {OPERATOR}"}, timeout=10)
    assert listed.status_code == 200
    [mine] = [p for p in listed.json()["pending"] if p["id"] == pending_id]
    assert mine["connector"] == "mailbox" and mine["objects"] == 1 and "pattern" not in listed.text
    approved = requests.post(f"{http}/pending/{pending_id}/approve",
                             headers={"Authorization": f"Bearer {OPERATOR}"}, timeout=10)  # fmt: skip
    assert approved.status_code == 200
    gone = requests.post(f"{http}/pending/{pending_id}/approve",
                         headers={"Authorization": f"Bearer {OPERATOR}"}, timeout=10)  # fmt: skip
    assert gone.status_code == 404


def test_the_expiry_schedule_drops_what_waited_too_long_and_tells_the_member(
    hub: wiring.Wiring, routing: Routing, aws: Aws
) -> None:
    from functions.poller import handler as poller

    pending_id, _ = held_report(hub, routing)
    assert hub.state is not None
    [item] = [p for p in hub.state.pending() if p.pending_id == pending_id]
    hub.state.take_pending(pending_id)
    hub.state.put_pending(replace(item, expires="2000-01-01T00:00:00.000Z", notify="csirt@bank-a.example"))
    ses = aws.client("ses")
    ses.verify_domain_identity(Domain="hub.example")
    before = ses.get_send_quota()["SentLast24Hours"]
    answer = poller.lambda_handler({"task": "expire-pending"}, localrun.LocalContext("renkei-poller"))
    assert answer == {"status": "ok", "expired": 1}
    assert pending_id not in {p.pending_id for p in hub.state.pending()}
    assert ses.get_send_quota()["SentLast24Hours"] > before  # the member was told
