"""Member mail as the hub receives it: who sent it, whether the server vouches for it, what it reports."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
import pytest
from stix2validator import ValidationOptions, validate_instance

from connectors.email.source import MailSource, intake_from_message
from gateway.intake import take
from gateway.memory import InMemoryBlobStore, InMemoryStateStore
from gateway.pipeline import Pipeline
from schemas.config import EmailConnector, HubConfig
from schemas.tlp import Tlp

ROOT = Path(__file__).resolve().parents[3]
REPORT = (ROOT / "examples" / "mail" / "report-bank-a.eml").read_bytes()
SAMPLES = ROOT / "tests" / "fixtures" / "mail"
MEMBER = {
    "match": "*@bank-a.example",
    "org": "Bank A",
    "community": "finance-isac",
    "anonymize": {"redact": ["10.20.0.0/16", "bank-a.example", "Bank A"]},
}
MAILBOX = {"id": "jcsip", "type": "email", "address": "report@hub.example.jp", "tlp": "GREEN", "members": [MEMBER]}


def mailbox(**changes: Any) -> EmailConnector:
    return EmailConnector.model_validate({**MAILBOX, **changes})


def mail(subject: str = "report", sender: str = "csirt@bank-a.example", auth: str | None = "pass", **kw: Any) -> bytes:
    message = EmailMessage(policy=policy.SMTP)
    if auth is not None:
        message["Authentication-Results"] = f"mx.hub.example.jp; dmarc={auth} header.from={sender.split('@')[1]}"
    message["From"] = sender
    message["To"] = "report@hub.example.jp"
    message["Subject"] = subject
    message["Date"] = "Fri, 20 Nov 2026 10:00:00 +0900"
    message["Message-ID"] = "<m1@bank-a.example>"
    message.set_content(
        kw.get("body", "Phishing seen: hxxps://login-check-secure[.]com/a"), charset=kw.get("charset", "utf-8")
    )
    return message.as_bytes()


def valid(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        result = validate_instance(obj, ValidationOptions(version="2.1"))
        assert result.is_valid, (obj["type"], [str(e) for e in result.errors])


def test_a_reported_mail_becomes_stix_with_the_member_its_tlp_and_who_must_stay_unnamed() -> None:
    intake = intake_from_message(mailbox(), REPORT, "report-bank-a.eml")
    assert intake.refusal is None and intake.objects is not None
    assert intake.member is not None and intake.member.org == "Bank A"
    assert intake.tlp is Tlp.AMBER  # [TLP:AMBER] in the subject
    assert set(intake.private_values) >= {
        "csirt@bank-a.example", "taro.yamada@bank-a.example", "treasury-team@bank-a.example",
    }  # fmt: skip
    by_type = Counter(o["type"] for o in intake.objects)
    assert by_type["email-message"] == 1 and by_type["file"] == 1 and by_type["report"] == 1
    patterns = {o["pattern"] for o in intake.objects if o["type"] == "indicator"}
    assert "[url:value = 'https://secure-payment-verify.com/approve?id=88213']" in patterns  # re-armed
    assert "[email-message:from_ref.value = 'notice@secure-payment-verify.com']" in patterns
    message = next(o for o in intake.objects if o["type"] == "email-message")
    assert message["subject"] == "【至急】海外送金の確認をお願いします"  # ISO-2022-JP and RFC 2047 decoded
    assert "to_refs" not in message  # anonymised member: the victims are not even written down
    text = orjson.dumps(intake.objects).decode()
    assert "invoice placeholder" not in text  # attachment bytes never leave: only their hashes
    valid(intake.objects)


def test_without_anonymity_the_recipients_are_kept_as_email_addresses() -> None:
    member = {**MEMBER, "anonymize": {"enabled": False}}
    intake = intake_from_message(mailbox(members=[member]), REPORT, "r.eml")
    assert intake.objects is not None
    message = next(o for o in intake.objects if o["type"] == "email-message")
    assert len(message["to_refs"]) == 2


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (mail(sender="someone@elsewhere.example"), "mail:unknown-sender"),
        (mail(auth="fail"), "mail:auth-failed"),
        (mail(auth=None), "mail:auth-failed"),
        (
            mail().replace(b"dmarc=pass header.from=bank-a.example", b"dmarc=pass header.from=evil.example"),
            "mail:auth-failed",
        ),
    ],
)
def test_senders_who_are_no_member_or_fail_authentication_are_refused(raw: bytes, reason: str) -> None:
    intake = intake_from_message(mailbox(), raw, "m.eml")
    assert intake.refusal is not None and intake.refusal.reason == reason and intake.raw == raw


def test_only_the_receiving_servers_verdict_counts_not_one_the_sender_wrote_below_it() -> None:
    forged = mail(auth="fail").replace(
        b"From:", b"Authentication-Results: forged.example; dmarc=pass header.from=bank-a.example\nFrom:", 1
    )
    assert intake_from_message(mailbox(), forged, "m.eml").refusal is not None
    assert intake_from_message(mailbox(authenticate="none"), mail(auth=None), "m.eml").refusal is None


@pytest.mark.parametrize("charset", ["iso-2022-jp", "shift_jis", "euc-jp", "utf-8"])
def test_japanese_mail_decodes_in_every_charset_the_field_uses(charset: str) -> None:
    body = "不審なメールを受信しました。 hxxp://kensa-portal-login[.]com/x を開かないでください。"
    intake = intake_from_message(
        mailbox(), mail(subject="[TLP:GREEN] 不審メールの報告", body=body, charset=charset), "m"
    )
    assert intake.objects is not None and intake.tlp is Tlp.GREEN
    report = next(o for o in intake.objects if o["type"] == "report")
    assert report["name"] == "[TLP:GREEN] 不審メールの報告" and "不審なメールを受信しました" in report["description"]
    assert "[url:value = 'http://kensa-portal-login.com/x']" in {o.get("pattern") for o in intake.objects}


def test_stix_bundles_attached_as_json_are_taken_as_they_are() -> None:
    message = EmailMessage(policy=policy.SMTP)
    message["Authentication-Results"] = "mx.hub.example.jp; dmarc=pass header.from=bank-a.example"
    message["From"], message["To"], message["Subject"] = "csirt@bank-a.example", "report@hub.example.jp", "advisory"
    message["Date"] = "Fri, 20 Nov 2026 10:00:00 +0900"
    message.set_content("see attached")
    indicator = {"type": "indicator", "spec_version": "2.1", "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
                 "created": "2026-11-20T00:00:00.000Z", "modified": "2026-11-20T00:00:00.000Z",
                 "pattern": "[ipv4-addr:value = '203.0.113.9']", "pattern_type": "stix",
                 "valid_from": "2026-11-20T00:00:00Z"}  # fmt: skip
    bundle = {"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d", "objects": [indicator]}
    message.add_attachment(orjson.dumps(bundle), maintype="application", subtype="json", filename="bundle.json")
    intake = intake_from_message(mailbox(), message.as_bytes(), "m")
    assert intake.objects == [indicator]


def nested(depth: int) -> bytes:
    """multipart/mixed inside multipart/mixed, `depth` deep."""
    head = mail().split(b"\n\n", 1)[0].split(b"\nContent-Type:")[0]
    body = b"Content-Type: text/plain\n\nbottom\n"
    for n in range(depth):
        boundary = f"b{n}".encode()
        body = b"Content-Type: multipart/mixed; boundary=" + boundary + b"\n\n--" + boundary + b"\n" + body
        body += b"--" + boundary + b"--\n"
    return head + b"\nMIME-Version: 1.0\n" + body


def many_parts(count: int) -> bytes:
    message = EmailMessage(policy=policy.SMTP)
    for name in ("Authentication-Results", "From", "To", "Subject", "Date"):
        message[name] = EmailMessage.__getitem__(
            __import__("email").message_from_bytes(mail(), policy=policy.SMTP), name
        )
    message.set_content("x")
    for n in range(count):
        message.add_attachment(b"x", maintype="application", subtype="octet-stream", filename=f"{n}.bin")
    return message.as_bytes()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (lambda: nested(40), "mail:too-deep"),
        (lambda: many_parts(1000), "mail:too-many-parts"),
        (lambda: b"x" * (25 * 1024 * 1024 + 2), "mail:too-large"),
    ],
)
def test_hostile_mail_gets_bounded_work_and_a_clear_reason(raw: Any, reason: str) -> None:
    intake = intake_from_message(mailbox(), raw(), "hostile.eml")
    assert intake.refusal is not None and intake.refusal.reason == reason


def test_every_real_sample_mail_is_converted_to_valid_stix_or_refused_with_a_reason() -> None:
    anyone = mailbox(authenticate="none", members=[{"match": "*@*", "org": "anyone"}])
    outcomes: Counter[str] = Counter()
    intakes = list(MailSource(anyone, InMemoryStateStore()).read(str(SAMPLES)))
    for intake in intakes:
        if intake.refusal is not None:
            outcomes[intake.refusal.reason] += 1
            continue
        outcomes["converted"] += 1
        assert intake.objects
        valid(intake.objects)
    print(f"\n{len(intakes)} real sample mails: {dict(outcomes)}")
    assert len(intakes) == len(list(SAMPLES.glob("msg_*.txt"))) and outcomes["converted"] >= 20


def test_through_the_pipeline_nothing_delivered_names_the_reporter_the_recipients_or_a_redacted_value() -> None:
    config = HubConfig.model_validate(
        {
            "hub": {"id": "hub-a"},
            "communities": [
                {"id": "finance-isac", "kind": "isac", "deliver": [{"pull": {}}]},
                {"id": "power-isac", "kind": "isac", "deliver": [{"pull": {}}]},
            ],
            "connectors": [
                {**MAILBOX, "members": [{**MEMBER, "scope": {"share_with": ["finance-isac", "power-isac"]}}]}
            ],
        }
    )
    received: dict[str, list[Any]] = {}

    class Capture:
        def deliver(self, destination: str, bundle: dict[str, Any]) -> None:
            received.setdefault(destination, []).append(bundle)

    clock = lambda: datetime(2026, 11, 23, tzinfo=UTC)  # noqa: E731
    pipeline = Pipeline(config, InMemoryStateStore(), InMemoryBlobStore(), Capture(), clock=clock, seal_key=b"k" * 32)
    result = take(pipeline, config, "jcsip", intake_from_message(config.connectors[0], REPORT, "r.eml"))  # type: ignore[arg-type]
    assert result.counts["delivered"] > 0 and set(received) == {"finance-isac", "power-isac"}
    delivered = orjson.dumps(received).decode()
    for secret in ("csirt@bank-a.example", "taro.yamada", "treasury-team", "bank-a.example", "Bank A", "10.20.4.17"):
        assert secret not in delivered
    assert "secure-payment-verify.com" in delivered  # the attacker's infrastructure is what is shared


def test_a_maildir_is_read_for_new_mail_only_and_each_mail_is_moved_to_cur_once_taken(tmp_path: Path) -> None:
    import mailbox as maildirs

    folder = maildirs.Maildir(tmp_path / "reports", create=True)
    for subject in ("first", "second"):
        folder.add(mail(subject=subject))
    source = MailSource(mailbox(), InMemoryStateStore())
    taken = [intake.refusal is None and intake.objects is not None for intake in source.read(str(tmp_path / "reports"))]
    assert taken == [True, True]
    assert not list((tmp_path / "reports" / "new").iterdir())
    assert sorted(f.name.endswith(":2,S") for f in (tmp_path / "reports" / "cur").iterdir()) == [True, True]
    assert list(source.read(str(tmp_path / "reports"))) == []  # nothing new: nothing read twice
    folder.add(mail(subject="third"))
    assert len(list(source.read(str(tmp_path / "reports")))) == 1


def test_a_zip_bomb_attachment_is_hashed_as_it_came_never_expanded() -> None:
    import email as email_package
    import hashlib
    import io
    import zipfile

    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("invoice.pdf.exe", b"\0" * (64 * 1024 * 1024))  # 64 MiB of zeros, about 64 KB packed
    bomb = packed.getvalue()
    # the member forwards the phishing mail as an attachment; the phishing mail carries the bomb
    phishing = email_package.message_from_bytes(mail(sender="billing@evil.example", auth=None), policy=policy.SMTP)
    assert isinstance(phishing, EmailMessage)
    phishing.add_attachment(bomb, maintype="application", subtype="zip", filename="invoice.zip")
    report = email_package.message_from_bytes(mail(subject="[TLP:GREEN] suspicious invoice"), policy=policy.SMTP)
    assert isinstance(report, EmailMessage)
    report.add_attachment(phishing)
    intake = intake_from_message(mailbox(), report.as_bytes(), "bomb.eml")
    assert intake.refusal is None and intake.objects is not None
    [attached] = [o for o in intake.objects if o["type"] == "file" and o.get("name") == "invoice.zip"]
    assert attached["hashes"]["SHA-256"] == hashlib.sha256(bomb).hexdigest() and attached["size"] == len(bomb)
    assert not [o for o in intake.objects if o.get("name") == "invoice.pdf.exe"]  # nothing inside was looked at
    valid(intake.objects)


def test_a_body_in_a_charset_nobody_knows_is_still_read_for_what_it_says() -> None:
    raw = mail(body="see hxxp://evil-login[.]com/x").replace(b'charset="utf-8"', b'charset="x-no-such-charset"')
    intake = intake_from_message(mailbox(), raw + b"\xff\xfe broken bytes\n", "odd.eml")
    assert intake.refusal is None and intake.objects is not None
    patterns = {o["pattern"] for o in intake.objects if o["type"] == "indicator"}
    assert "[url:value = 'http://evil-login.com/x']" in patterns
