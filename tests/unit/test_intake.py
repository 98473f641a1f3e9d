"""From intake to pipeline: a member's overrides, a stated TLP and a mail's recipients, also after approval."""

from __future__ import annotations

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
