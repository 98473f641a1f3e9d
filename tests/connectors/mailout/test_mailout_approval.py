"""Approval mails through moto's SES and back through the parser; the reply's token releases, nothing else does."""

from __future__ import annotations

import email
from email import policy
from typing import Any

from connectors.mailout.approval import ApprovalMailer, new_token, parse_approval_reply, verify_token
from gateway.model import PendingItem
from schemas.config import Hub
from tests.connectors.mailout.conftest import sent_mails

HUB_ADDRESS = "approve@hub.example.jp"
MEMBER = "soc@member.example.jp"
PENDING = PendingItem("p-1", "jcsip", "member", "2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z",
                      [{"type": "indicator", "id": "indicator--1"}] * 3, "report.eml")  # fmt: skip


def last_sent() -> Any:
    raw = sent_mails()[-1].raw_data
    return email.message_from_string(raw, policy=policy.default)


def test_the_token_mailed_is_the_one_a_reply_approves(ses: Any) -> None:
    mailer = ApprovalMailer(Hub(id="hub-a", name="ハブ"), ses, HUB_ADDRESS)
    digest = mailer.ask(PENDING, MEMBER)
    raw = sent_mails()[-1].raw_data
    assert "承認" not in raw.split("\n\n", 1)[0]  # RFC 2047-encoded on the wire
    mail = last_sent()
    assert mail["Subject"] == "Renkei: approve 3 object(s) 承認のお願い" and mail["To"] == MEMBER
    body = mail.get_body(("plain",)).get_content()
    token = next(line.split()[1] for line in body.splitlines() if line.startswith("APPROVE "))
    assert "gateway approve p-1" in body and token not in digest
    reply = (f"From: {MEMBER}\nTo: {HUB_ADDRESS}\nSubject: Re: approve\n\nAPPROVE {token}\n\n"
             f"> APPROVE {'x' * 32}\n").encode()  # fmt: skip
    found = parse_approval_reply(reply)
    assert found == token and verify_token(found, digest) and not verify_token(new_token()[0], digest)


def test_quoted_or_missing_or_huge_replies_approve_nothing() -> None:
    token, _ = new_token()
    assert parse_approval_reply(f"Subject: Re\n\n> APPROVE {token}\nthanks\n".encode()) is None
    assert parse_approval_reply(b"Subject: Re\n\nno\n") is None
    assert parse_approval_reply(b"Subject: Re\n\n" + f"APPROVE {token}\n".encode() * 100_000) is None
    assert not verify_token(token, "")


def test_expiry_notice_tells_the_member(ses: Any) -> None:
    ApprovalMailer(Hub(id="hub-a"), ses, HUB_ADDRESS).tell_expired(PENDING, MEMBER)
    mail = last_sent()
    assert mail["Subject"] == "Renkei: approval expired 承認期限切れ"
    assert "p-1" in mail.get_body(("plain",)).get_content()
