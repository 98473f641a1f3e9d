"""A member's mail as STIX 2.1.

- a reported mail (attached as message/rfc822, or the member's own mail when nothing is attached): an
  `email-message` with its headers, `email-addr`s, `url`s and `domain-name`s from its body, a `file` with
  hashes per attachment (the bytes stay in the stored raw input, never relayed), `indicator`s for the sender
  address, URLs, domains and hashes, grouped by an `observed-data` and a `report`;
- STIX bundles attached as JSON (partners without a system send them so): their objects as they are.

Ids of SCOs follow STIX's id-contributing properties (the stix2 library computes them); SDO ids are uuid5 of
the reporter's Message-ID, so a mail sent twice is one set of objects.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any

import stix2

from connectors.email.indicators import find
from connectors.email.parse import Attachment, MailRefused, Walked, addresses, sender_address, walk
from connectors.feed.text import stix_time

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://renkei.invalid/ns/mail")
_HEADERS_KEPT = ("Reply-To", "Message-ID", "X-Mailer", "Return-Path")


def stix_bundles(walked: Walked) -> list[dict[str, Any]]:
    """Objects of STIX bundles attached as JSON."""
    objects: list[dict[str, Any]] = []
    for attachment in walked.attachments:
        named_json = (attachment.filename or "").lower().endswith((".json", ".stix", ".stix2"))
        if attachment.media_type not in ("application/json", "application/stix+json") and not named_json:
            continue
        try:
            document = json.loads(attachment.data)
        except (ValueError, RecursionError):
            continue
        if (
            isinstance(document, dict)
            and document.get("type") == "bundle"
            and isinstance(document.get("objects"), list)
        ):
            objects.extend(o for o in document["objects"] if isinstance(o, dict))
    return objects


def reported_objects(member_mail: EmailMessage, reported: EmailMessage, keep_recipients: bool) -> list[dict[str, Any]]:
    """STIX for one reported mail. Without `keep_recipients` the To/Cc addresses are not even written down."""
    inner = walk(reported)
    when = _date(member_mail)
    sender = sender_address(reported)
    scos: list[Any] = []
    sender_addr = stix2.EmailAddress(value=sender) if sender else None
    if sender_addr is not None:
        scos.append(sender_addr)
    recipients = []
    if keep_recipients:
        recipients = [stix2.EmailAddress(value=a) for a in addresses(reported, "To", "Cc")]
        scos += recipients
    files = [_file(a) for a in inner.attachments if a.data]
    scos += files
    found = find(f"{reported.get('Subject', '')}\n{inner.text}")
    recipient_values = set(addresses(reported, "To", "Cc"))
    body_addresses = sorted(found.emails - recipient_values - {sender})
    scos += [stix2.EmailAddress(value=a) for a in body_addresses]
    urls = [stix2.URL(value=u) for u in sorted(found.urls)]
    domains = [stix2.DomainName(value=d) for d in sorted(found.domains)]
    scos += urls + domains
    additional = {h: str(reported[h]) for h in _HEADERS_KEPT if reported.get(h)}
    received = [str(v) for v in reported.get_all("Received", [])][:30]
    if received:  # STIX: one value is a string, several a list
        additional["Received"] = received if len(received) > 1 else received[0]  # type: ignore[assignment]
    message_args: dict[str, Any] = {
        "is_multipart": reported.is_multipart(),
        "subject": str(reported.get("Subject", "")),
    }
    if sender_addr is not None:
        message_args["from_ref"] = sender_addr.id
    if recipients:
        message_args["to_refs"] = [r.id for r in recipients]
    if reported.get("Date"):
        message_args["date"] = _date(reported)
    if additional:
        message_args["additional_header_fields"] = additional
    email_message = stix2.EmailMessage(**message_args)
    scos.append(email_message)

    key = str(member_mail.get("Message-ID") or hashlib.sha256(bytes(member_mail)).hexdigest())
    stamp = {"created": when, "modified": when}
    observed = stix2.ObservedData(
        id=_sid("observed-data", key),
        first_observed=when,
        last_observed=when,
        number_observed=1,
        object_refs=[s.id for s in scos],
        **stamp,
    )
    indicators = []
    patterns = []
    if sender:
        patterns.append((f"Sender {sender}", f"[email-message:from_ref.value = '{_quote(sender)}']"))
    patterns += [(f"Address {a}", f"[email-addr:value = '{_quote(a)}']") for a in body_addresses]
    patterns += [(f"URL {u.value}", f"[url:value = '{_quote(u.value)}']") for u in urls]
    patterns += [(f"Domain {d.value}", f"[domain-name:value = '{_quote(d.value)}']") for d in domains]
    for f in files:
        sha256 = f.hashes["SHA-256"]
        patterns.append((f"Attachment {f.get('name', sha256[:12])}", f"[file:hashes.'SHA-256' = '{sha256}']"))
    for name, pattern in patterns:
        if any(value in pattern for value in recipient_values):
            continue  # a victim's address is no indicator
        indicators.append(
            stix2.Indicator(
                id=_sid("indicator", f"{key}|{pattern}"),
                name=name[:250],
                pattern=pattern,
                pattern_type="stix",
                valid_from=when,
                indicator_types=["malicious-activity"],
                **stamp,
            )
        )
    report = stix2.Report(
        id=_sid("report", key),
        name=f"Reported mail: {message_args['subject']}"[:250] or "Reported mail",
        published=when,
        report_types=["threat-report"],
        object_refs=[observed.id, *(i.id for i in indicators)],
        **stamp,
    )
    return [_plain(o) for o in (report, observed, *indicators, *scos)]


def advisory_objects(member_mail: EmailMessage, walked: Walked) -> list[dict[str, Any]]:
    """A plain-text advisory: a report holding the text and an indicator per thing found in it."""
    when = _date(member_mail)
    key = str(member_mail.get("Message-ID") or hashlib.sha256(bytes(member_mail)).hexdigest())
    stamp = {"created": when, "modified": when}
    found = find(walked.text)
    patterns = [f"[url:value = '{_quote(u)}']" for u in sorted(found.urls)]
    patterns += [f"[domain-name:value = '{_quote(d)}']" for d in sorted(found.domains)]
    patterns += [f"[ipv4-addr:value = '{ip}']" for ip in sorted(found.ipv4s)]
    patterns += [f"[file:hashes.'SHA-256' = '{h}']" for h in sorted(found.sha256s)]
    patterns += [f"[file:hashes.MD5 = '{h}']" for h in sorted(found.md5s)]
    indicators = [
        stix2.Indicator(
            id=_sid("indicator", f"{key}|{p}"),
            pattern=p,
            pattern_type="stix",
            valid_from=when,
            indicator_types=["malicious-activity"],
            **stamp,
        )
        for p in patterns
    ]
    subject = str(member_mail.get("Subject", "")) or "Advisory by mail"
    note = stix2.Note(
        id=_sid("note", key), content=walked.text[:100_000] or subject, object_refs=[_sid("report", key)], **stamp
    )
    report = stix2.Report(
        id=_sid("report", key),
        name=subject[:250],
        published=when,
        report_types=["threat-report"],
        description=walked.text[:100_000],
        object_refs=[note.id, *(i.id for i in indicators)],
        **stamp,
    )
    return [_plain(o) for o in (report, note, *indicators)]


def _file(attachment: Attachment) -> Any:
    data = attachment.data
    hashes = {
        "MD5": hashlib.md5(data).hexdigest(),  # noqa: S324 - an identifier the field uses, not security
        "SHA-1": hashlib.sha1(data).hexdigest(),  # noqa: S324
        "SHA-256": hashlib.sha256(data).hexdigest(),
    }
    args: dict[str, Any] = {"hashes": hashes, "size": len(data), "mime_type": attachment.media_type}
    if attachment.filename:
        args["name"] = attachment.filename[:250]
    return stix2.File(**args)


def _date(message: EmailMessage) -> str:
    """The mail's Date as STIX time: every version of the objects it yields is stamped with it, so a mail sent
    twice is a duplicate rather than an update. Raises MailRefused without one."""
    try:
        stamp = stix_time(parsedate_to_datetime(str(message.get("Date", ""))).isoformat())
    except (TypeError, ValueError, IndexError):
        stamp = None
    if stamp is None:
        raise MailRefused("mail:no-date", "the mail has no readable Date header")
    return stamp


def _sid(kind: str, key: str) -> str:
    return f"{kind}--{uuid.uuid5(NAMESPACE, f'{kind}|{key}')}"


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _plain(obj: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(obj.serialize())
    return data
