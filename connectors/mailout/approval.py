"""Approval by mail: the member gets a one-time token and releases held objects by replying `APPROVE <token>`.

Only the sha256 of the token is stored (PendingItem.token_hash); the token itself lives only in the mail.
"""

from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from gateway.approval import new_token, token_hash, verify_token
from gateway.errors import PermanentError, RetryableError
from gateway.model import PendingItem
from schemas.config import Hub

__all__ = [
    "ApprovalMailer",
    "confirmation_mail",
    "expiry_notice",
    "new_token",
    "parse_approval_reply",
    "token_hash",
    "verify_token",
]

_MAX_REPLY = 1 << 20  # a reply is short; a bigger one is not parsed at all
_MAX_LINES = 2000
_APPROVE = re.compile(r"^\s*APPROVE\s+([A-Za-z0-9_-]{20,64})\b")
_RETRYABLE = {"Throttling", "ThrottlingException", "ServiceUnavailable", "InternalFailure", "RequestTimeout"}


def parse_approval_reply(raw: bytes) -> str | None:
    """The token of the first unquoted `APPROVE <token>` line of the reply's plain text, if any."""
    if len(raw) > _MAX_REPLY:
        return None
    try:
        message = email.message_from_bytes(raw, policy=policy.default)
        part = message.get_body(("plain",))
        text = part.get_content() if part is not None else ""
    except (LookupError, ValueError, TypeError, AttributeError):  # a broken reply approves nothing
        return None
    for line in str(text).splitlines()[:_MAX_LINES]:
        if line.lstrip().startswith(">"):
            continue
        if match := _APPROVE.match(line):
            return match.group(1)
    return None


def _mail(hub: Hub, sender: str, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = to
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    message.set_content(body, charset="utf-8")
    return message


def confirmation_mail(hub: Hub, member_address: str, pending: PendingItem, token: str, sender: str) -> EmailMessage:
    name = hub.name or hub.id
    body = (
        f"{len(pending.objects)} object(s) from your input {pending.input_name!r} wait for your approval at {name}.\n"
        f"Pending id: {pending.pending_id}\nThey expire unapproved at {pending.expires}.\n\n"
        f"To release them, reply to this mail with this line at the top:\n\nAPPROVE {token}\n\n"
        f"or ask an operator to run: gateway approve {pending.pending_id}\n"
        "The token works once. Do nothing to let them expire.\n"
    )
    return _mail(hub, sender, member_address, f"Renkei: approve {len(pending.objects)} object(s) 承認のお願い", body)


def expiry_notice(hub: Hub, member_address: str, pending: PendingItem, sender: str) -> EmailMessage:
    body = (
        f"The {len(pending.objects)} object(s) from your input {pending.input_name!r} (pending id "
        f"{pending.pending_id}) were not approved by {pending.expires} and have been discarded; nothing was shared.\n"
    )
    return _mail(hub, sender, member_address, "Renkei: approval expired 承認期限切れ", body)


class ApprovalMailer:
    def __init__(self, hub: Hub, ses: Any, hub_address: str) -> None:
        self.hub = hub
        self.ses = ses
        self.hub_address = hub_address

    def ask(self, pending: PendingItem, member_address: str) -> str:
        """Mails the token; returns its hash for PendingItem.token_hash."""
        token, digest = new_token()
        self._send(confirmation_mail(self.hub, member_address, pending, token, self.hub_address), member_address)
        return digest

    def tell_expired(self, pending: PendingItem, member_address: str) -> None:
        self._send(expiry_notice(self.hub, member_address, pending, self.hub_address), member_address)

    def _send(self, message: EmailMessage, to: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.ses.send_raw_email(Source=self.hub_address, Destinations=[to], RawMessage={"Data": message.as_bytes()})
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _RETRYABLE or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
                raise RetryableError(f"SES {code}") from None
            raise PermanentError(f"SES refused the approval mail ({code})") from None
        except BotoCoreError as exc:
            raise RetryableError(f"SES unreachable ({type(exc).__name__})") from None
