"""The `email` connector: a member's mail (a file, a folder, a maildir; on AWS the S3 object an SES receipt rule
wrote) becomes one intake: the member it came from, the TLP its subject states, the people it must not name,
and its STIX; or a refusal with the reason."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from connectors.email.convert import advisory_objects, reported_objects, stix_bundles
from connectors.email.indicators import find
from connectors.email.limits import MAX_MAIL_BYTES
from connectors.email.members import member_of
from connectors.email.parse import MailRefused, addresses, parse, sender_address, walk
from connectors.email.subject_tlp import subject_tlp
from connectors.mailout.approval import parse_approval_reply
from gateway.errors import SourceUnavailable
from gateway.intake import Intake, Refusal
from gateway.ports import StateStore
from schemas.config import EmailConnector

MAIL_SUFFIXES = (".eml", ".msg", ".txt")


class MailSource:
    def __init__(self, connector: EmailConnector, state: StateStore) -> None:
        self.connector = connector
        self.state = state

    def read(self, location: str | None) -> Iterator[Intake]:
        location = location or self.connector.source
        if not location:
            raise SourceUnavailable(f"connector {self.connector.id!r} has no `source`: give {self.connector.id}=FILE")
        path = Path(location)
        if path.is_file():
            yield self._read(path)
        elif (path / "new").is_dir() and (path / "cur").is_dir():
            yield from self._maildir(path)
        elif path.is_dir():
            for file in sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in MAIL_SUFFIXES):
                yield self._read(file)
        else:
            raise SourceUnavailable(f"{location}: no such file or folder")

    def _maildir(self, path: Path) -> Iterator[Intake]:
        """New mail only. Each is moved to cur/ and marked seen (the maildir way) once it has been taken,
        so a crash mid-way leaves it in new/ to be read again (dedupe makes that harmless)."""
        for file in sorted(f for f in (path / "new").iterdir() if f.is_file() and not f.name.startswith(".")):
            yield self._read(file)
            with contextlib.suppress(FileNotFoundError):  # another reader took it meanwhile
                file.rename(path / "cur" / f"{file.name}:2,S")

    def _read(self, file: Path) -> Intake:
        with file.open("rb") as handle:
            return intake_from_message(self.connector, handle.read(MAX_MAIL_BYTES + 1), str(file))


def intake_from_message(connector: EmailConnector, raw: bytes, name: str) -> Intake:
    """One raw RFC 5322 message as an intake. Never raises for bad mail: it is refused with the reason."""
    if len(raw) > MAX_MAIL_BYTES:
        return Intake(name, raw, refusal=Refusal("mail:too-large", f"over {MAX_MAIL_BYTES} bytes"))
    try:
        return _intake(connector, raw, name)
    except MailRefused as refused:
        return Intake(name, raw, refusal=Refusal(refused.reason, refused.detail))
    except (RecursionError, MemoryError) as exc:
        return Intake(name, raw, refusal=Refusal("mail:unreadable", type(exc).__name__))


def _intake(connector: EmailConnector, raw: bytes, name: str) -> Intake:
    message = parse(raw)
    member = member_of(connector, message)  # authenticated: only the member itself can approve
    token = parse_approval_reply(raw)
    if token is not None:
        return Intake(name, raw, member=member, approval_token=token, reporter=sender_address(message))
    walked = walk(message)
    anonymize = member.anonymize if member.anonymize is not None else connector.anonymize
    keep_recipients = anonymize is None or not anonymize.enabled
    objects = stix_bundles(walked)
    private = {sender_address(message)}
    for reported in walked.attached_mails:
        objects += reported_objects(message, reported, keep_recipients)
        private |= set(addresses(reported, "To", "Cc", "Delivered-To", "X-Original-To"))
        private |= find(walk(reported).text).emails & set(addresses(reported, "To", "Cc"))
    if not objects:
        # Nothing attached: a forwarded-inline report or a plain-text advisory; the member's own mail is the one
        objects = advisory_objects(message, walked) if not _forwarded(walked.text) else []
        if not objects:
            objects = reported_objects(message, message, keep_recipients)
    private |= set(addresses(message, "To", "Cc")) - {connector.address.lower()}
    return Intake(
        name,
        raw,
        objects=objects,
        member=member,
        tlp=subject_tlp(str(message.get("Subject", ""))),
        private_values=tuple(sorted(p for p in private if p)),
        reporter=sender_address(message),
    )


def _forwarded(text: str) -> bool:
    markers = (
        "---------- Forwarded message",
        "-----Original Message-----",
        "Begin forwarded message",
        "転送メッセージ",
    )
    return any(marker in text for marker in markers)
