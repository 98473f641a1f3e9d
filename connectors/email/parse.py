"""A raw RFC 5322 message, walked within bounds with the standard `email` package."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr

from connectors.email.limits import MAX_DEPTH, MAX_PARTS, MAX_TEXT_CHARS
from connectors.plaintext import plain


class MailRefused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class Attachment:
    filename: str | None
    media_type: str
    data: bytes


@dataclass
class Walked:
    """What a message holds, read once: its text, attachments and the mails attached to it."""

    message: EmailMessage
    text: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    attached_mails: list[EmailMessage] = field(default_factory=list)


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    for name in ("From", "Subject", "To", "Cc", "Reply-To"):
        value = message.get(name)
        if value is not None and ("\n" in str(value) or "\r" in str(value)):
            raise MailRefused("mail:header-injection", f"a line break inside the {name} header")
    return message


def walk(message: EmailMessage) -> Walked:
    """Text, attachments and attached mails of one message (not descending into those). Raises MailRefused."""
    walked = Walked(message)
    texts: list[str] = []
    budget = MAX_TEXT_CHARS
    stack: list[tuple[Message, int]] = [(message, 0)]
    parts = 0
    while stack:
        part, depth = stack.pop()
        parts += 1
        if parts > MAX_PARTS:
            raise MailRefused("mail:too-many-parts", f"more than {MAX_PARTS} MIME parts")
        if depth > MAX_DEPTH:
            raise MailRefused("mail:too-deep", f"MIME nested deeper than {MAX_DEPTH}")
        media = part.get_content_type()
        if media == "message/rfc822" and part is not message:
            inner = part.get_payload()
            inner_message = inner[0] if isinstance(inner, list) and inner else None
            if isinstance(inner_message, EmailMessage):
                walked.attached_mails.append(inner_message)
            continue
        if part.is_multipart():
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend((child, depth + 1) for child in reversed(children))
            continue
        disposition = part.get_content_disposition()
        if media in ("text/plain", "text/html") and disposition != "attachment":
            text = _text(part)
            texts.append(text[:budget])
            budget -= len(text)
            continue
        data = part.get_payload(decode=True)
        if isinstance(data, bytes):
            walked.attachments.append(Attachment(part.get_filename(), media, data))
    walked.text = "\n".join(texts)
    return walked


def _text(part: Message) -> str:
    try:
        content = part.get_content() if isinstance(part, EmailMessage) else None
    except (LookupError, UnicodeDecodeError, AssertionError):
        content = None
    if not isinstance(content, str):  # an unknown charset: decode what can be
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    if part.get_content_type() == "text/html":
        content = plain(content)
    return content


def sender_address(message: EmailMessage) -> str:
    return parseaddr(str(message.get("From", "")))[1].lower()


def addresses(message: EmailMessage, *headers: str) -> list[str]:
    values = [str(v) for h in headers for v in message.get_all(h, [])]
    return [addr.lower() for _, addr in getaddresses(values) if "@" in addr]
