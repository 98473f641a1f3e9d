"""The e-mail channel end to end: rendered, sent with SES on moto's server, and read back with the parser."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime
from email import policy
from typing import Any

import orjson
import pytest
from botocore.stub import Stubber
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.mailout.channel import MailChannel
from connectors.mailout.defang import defang
from gateway.errors import PermanentError, RetryableError
from gateway.memory import InMemoryBlobStore, InMemoryStateStore
from gateway.pipeline import Pipeline
from gateway.senders import sender_for
from schemas.config import EmailTarget, HubConfig
from tests.connectors.mailout.conftest import sent_mails

HUB_ADDRESS = "renkei@hub.example.jp"
DOMAIN = r"[a-z0-9-]{1,12}(\.[a-z0-9-]{1,10}){0,2}\.(com|net|jp|io|org)"
FANGED = re.compile(r"https?://|\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b|[\w-]\.[a-z]{2,}\b", re.IGNORECASE)


def sent() -> list[Any]:
    return sent_mails()


CONFIG = HubConfig.model_validate(
    {
        "hub": {"id": "hub-a", "name": "Cross-sector hub"},
        "communities": [{"id": "fsa", "kind": "regulator", "deliver": [{"email": {"to": ["cyber@fsa.example"]}}]}],
        "connectors": [{"id": "drop", "type": "stix", "tlp": "GREEN", "sender": {"org": "CERT"}}],
    }
)


def indicator(name: str, modified: str, description: str) -> dict[str, Any]:
    return {
        "type": "indicator", "spec_version": "2.1", "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        "created": "2026-11-20T00:00:00.000Z", "modified": modified, "name": name, "description": description,
        "pattern": "[url:value = 'https://secure-payment-verify.com/approve']", "pattern_type": "stix",
        "valid_from": "2026-11-20T00:00:00Z",
    }  # fmt: skip


def test_a_delivery_arrives_as_a_readable_defanged_mail_with_the_bundle_attached(ses: Any) -> None:
    channel = MailChannel(CONFIG.hub, CONFIG.communities[0].deliver[0].email, ses, HUB_ADDRESS)  # type: ignore[union-attr]
    pipeline = Pipeline(CONFIG, InMemoryStateStore(), InMemoryBlobStore(), channel,
                        clock=lambda: datetime(2026, 11, 23, tzinfo=UTC), seal_key=b"k" * 32)  # fmt: skip
    before = len(sent())
    first = indicator("Phishing URL", "2026-11-20T00:00:00.000Z", "Seen at https://secure-payment-verify.com/x")
    second = indicator("Phishing URL", "2026-11-21T00:00:00.000Z", "Also from 198.51.100.23 via mail.evil-relay.net")
    for obj in (first, second):
        raw = orjson.dumps({"type": "bundle", "id": "bundle--1", "objects": [obj]})
        assert pipeline.ingest(raw, sender_for(CONFIG, "drop"), "in.json").deliveries["fsa"] == 1
    mails = sent()[before:]
    assert len(mails) == 2
    parsed = [email.message_from_string(m.raw_data, policy=policy.default) for m in mails]
    assert (
        parsed[0]["Subject"] == "[TLP:GREEN] Renkei: 1 new"
        and parsed[1]["Subject"] == "[TLP:GREEN] Renkei: 0 new, 1 update"
    )
    body = parsed[1].get_body(("plain",)).get_content()
    assert "What changed:" in body and not FANGED.search(body), body
    attachment = next(parsed[1].iter_attachments())
    assert attachment.get_content_type() == "application/stix+json" and attachment.get_param("version") == "2.1"
    delivered = orjson.loads(attachment.get_content())
    assert second["id"] in {o["id"] for o in delivered["objects"]}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.from_regex(rf"https?://{DOMAIN}(/[a-z0-9/?=&.]{{0,20}})?", fullmatch=True),
            st.from_regex(DOMAIN, fullmatch=True),
            st.ip_addresses(v=4).map(str),
            st.from_regex(r"[a-z0-9._-]{1,10}@[a-z0-9-]{1,10}\.(com|net|jp)", fullmatch=True),
        ),
        min_size=1, max_size=5,
    )
)  # fmt: skip
def test_nothing_clickable_survives_defanging(values: list[str]) -> None:
    text = "Indicators: " + " and ".join(values) + "."
    assert not FANGED.search(defang(text)), defang(text)


def test_ses_throttling_is_retried_and_a_refusal_is_not(ses: Any) -> None:
    """SES answers as botocore's Stubber plays it (the error shapes of the real service), in front of moto."""
    bundle = {"type": "bundle", "id": "bundle--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f", "objects": []}
    channel = MailChannel(CONFIG.hub, EmailTarget(to=["cyber@fsa.example"]), ses, HUB_ADDRESS)
    with Stubber(ses) as stub:
        stub.add_client_error("send_raw_email", "Throttling", "Maximum sending rate exceeded.", 400)
        stub.add_client_error("send_raw_email", "ServiceUnavailable", "try later", 503)
        stub.add_client_error("send_raw_email", "MessageRejected", "Email address is not verified.", 400)
        with pytest.raises(RetryableError, match="Throttling"):
            channel.deliver("fsa", bundle)
        with pytest.raises(RetryableError, match="ServiceUnavailable"):
            channel.deliver("fsa", bundle)
        with pytest.raises(PermanentError, match="MessageRejected"):
            channel.deliver("fsa", bundle)
    before = len(sent())
    channel.deliver("fsa", bundle)  # and once SES takes mail again, it goes out
    assert len(sent()) == before + 1
