"""From intake to pipeline: a member's overrides, a stated TLP and a mail's recipients, also after approval."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from gateway.intake import Intake, sender_of, sender_of_pending, take
from gateway.senders import UnknownConnector
from schemas.config import HubConfig
from schemas.tlp import Tlp
from tests.unit.stixdata import bundle, indicator
from tests.unit.test_pipeline import Hub

CONFIG = {
    "hub": {"id": "hub-a"},
    "communities": [
        {"id": "finance-isac", "kind": "isac", "deliver": [{"pull": {}}]},
        {"id": "power-isac", "kind": "isac", "deliver": [{"pull": {}}]},
    ],
    "connectors": [
        {
            "id": "mailbox",
            "type": "email",
            "address": "report@hub.example",
            "tlp": "GREEN",
            "members": [
                {
                    "match": "*@bank-a.example",
                    "org": "Bank A",
                    "community": "finance-isac",
                    "scope": {"share_with": ["finance-isac", "power-isac"]},
                    "anonymize": {"redact": ["bank-a.example"]},
                    "approval": "required",
                }
            ],
        }
    ],
}
RECIPIENT = "victim@target.example"


def mail_intake(config: HubConfig, tlp: Tlp | None = None) -> Intake:
    member = config.connectors[0].members[0]  # type: ignore[union-attr]
    reported = indicator("phish", description=f"Sent to {RECIPIENT} from attacker.example")
    return Intake("mail.eml", bundle(reported), member=member, tlp=tlp, private_values=(RECIPIENT,))


def test_a_member_overrides_the_connector_and_a_stated_tlp_can_only_raise_it() -> None:
    config = HubConfig.model_validate(CONFIG)
    assert sender_of(config, "mailbox", mail_intake(config)).org == "Bank A"
    assert sender_of(config, "mailbox", mail_intake(config, Tlp.AMBER)).tlp is Tlp.AMBER
    assert sender_of(config, "mailbox", mail_intake(config, Tlp.CLEAR)).tlp is Tlp.GREEN


def test_approval_releases_under_the_policy_in_force_when_held_never_looser() -> None:
    # Given a member's report marked TLP:AMBER in its subject, held for approval
    config = HubConfig.model_validate(CONFIG)
    hub = Hub(config)
    held = take(hub.pipeline, config, "mailbox", mail_intake(config, Tlp.AMBER))
    assert held.counts["pending"] == 1
    item = hub.state.pending()[0]
    # When released
    released = hub.pipeline.approve(item.pending_id, sender_of_pending(config, item))
    # Then it went only where AMBER may go (listed by the member), still AMBER, without the recipient
    assert released is not None and released.counts["delivered"] == 1
    delivered = orjson.dumps(hub.capture.bundles).decode()
    assert RECIPIENT not in delivered and "Bank A" not in delivered
    assert set(hub.capture.bundles) == {"finance-isac", "power-isac"}
    markings = {
        r for b in hub.capture.bundles["power-isac"] for o in b["objects"] for r in o.get("object_marking_refs", [])
    }
    assert "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421" in markings  # TLP 2.0 AMBER


def test_a_pending_input_of_a_member_no_longer_configured_is_not_released_under_the_connectors_choices() -> None:
    config = HubConfig.model_validate(CONFIG)
    hub = Hub(config)
    take(hub.pipeline, config, "mailbox", mail_intake(config))
    item = hub.state.pending()[0]
    without_member = dict(CONFIG, connectors=[dict(CONFIG["connectors"][0], members=[])])  # type: ignore[arg-type]
    with pytest.raises(UnknownConnector, match="Bank A"):
        sender_of_pending(HubConfig.model_validate(without_member), item)


class Asker:
    """Records what the hub would mail; the real mailer (SES) has its own tests in tests/connectors/mailout."""

    def __init__(self) -> None:
        self.tokens: list[str] = []

    def ask(self, pending: object, member_address: str) -> str:
        from gateway.approval import new_token

        token, digest = new_token()
        self.tokens.append(token)
        return digest

    def tell_expired(self, pending: object, member_address: str) -> None:
        pass


def test_a_members_reply_with_its_token_releases_its_report_once_and_a_wrong_token_is_quarantined() -> None:
    config = HubConfig.model_validate(CONFIG)
    hub = Hub(config)
    asker = Asker()
    held = replace(mail_intake(config), reporter="csirt@bank-a.example")
    assert take(hub.pipeline, config, "mailbox", held, asker).counts["pending"] == 1
    item = hub.state.pending()[0]
    assert item.notify == "csirt@bank-a.example" and item.token_hash and asker.tokens[0] not in str(item)
    member = config.connectors[0].members[0]  # type: ignore[union-attr]
    wrong = Intake("reply.eml", b"APPROVE nope", member=member, approval_token="x" * 32)
    refused = take(hub.pipeline, config, "mailbox", wrong)
    assert refused.quarantined[0].reason == "approval:unknown-token" and hub.state.pending()
    reply = Intake("reply.eml", b"APPROVE ...", member=member, approval_token=asker.tokens[0])
    released = take(hub.pipeline, config, "mailbox", reply)
    assert released.counts["delivered"] == 1 and hub.state.pending() == []
    again = take(hub.pipeline, config, "mailbox", reply)
    assert again.quarantined[0].reason == "approval:unknown-token"


def test_a_report_whose_approval_request_cannot_be_sent_stays_held_and_is_said() -> None:
    from gateway.errors import PermanentError

    class Down(Asker):
        def ask(self, pending: object, member_address: str) -> str:
            raise PermanentError("SES refused")

    config = HubConfig.model_validate(CONFIG)
    hub = Hub(config)
    result = take(hub.pipeline, config, "mailbox", replace(mail_intake(config), reporter="a@bank-a.example"), Down())
    assert result.counts["pending"] == 1 and result.unasked == [hub.state.pending()[0].pending_id]
