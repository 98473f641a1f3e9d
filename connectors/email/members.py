"""Who sent a mail: the member rule its From address matches, and whether the receiving server vouches for it.

Only the topmost Authentication-Results header counts: it is the one our receiving server (SES, or the MTA in
front of `serve`) added; any below it came with the mail and can be forged by the sender.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from fnmatch import fnmatchcase

from connectors.email.parse import MailRefused, sender_address
from schemas.config import EmailConnector, MemberRule

_DMARC = re.compile(r"\bdmarc\s*=\s*(\w+)(?:[^;]*?\bheader\.from\s*=\s*([^\s;]+))?", re.IGNORECASE)


def member_of(connector: EmailConnector, message: EmailMessage) -> MemberRule:
    """The member that sent `message`. Raises MailRefused (unknown sender, failed authentication)."""
    address = sender_address(message)
    if not address:
        raise MailRefused("mail:no-sender", "the mail has no From address")
    member = next((m for m in connector.members if fnmatchcase(address, m.match)), None)
    if member is None:
        raise MailRefused("mail:unknown-sender", "the sender matches no member of this mailbox")
    if connector.authenticate == "dmarc":
        _authenticated(message, address.rsplit("@", 1)[1])
    return member


def _authenticated(message: EmailMessage, domain: str) -> None:
    for verdict in ("X-SES-Virus-Verdict", "X-SES-Spam-Verdict"):
        value = message.get(verdict)
        if value is not None and str(value).strip().upper() != "PASS":
            raise MailRefused("mail:auth-failed", f"{verdict}: {str(value).strip()[:20]}")
    results = message.get_all("Authentication-Results") or []
    if not results:
        raise MailRefused("mail:auth-failed", "no Authentication-Results from the receiving server")
    match = _DMARC.search(str(results[0]))
    if match is None or match.group(1).lower() != "pass":
        raise MailRefused("mail:auth-failed", "DMARC did not pass for the sender's domain")
    aligned = (match.group(2) or domain).lower().rstrip(".")
    if aligned != domain and not domain.endswith("." + aligned):
        raise MailRefused("mail:auth-failed", "DMARC passed for another domain than the sender's")
