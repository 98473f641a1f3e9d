"""Anonymise: the sender's identity, the reported mail's recipients and every `redact` value stay in the hub.

Text is redacted in place. Objects whose identity *is* a private value (an SCO such as an internal
IP, whose deterministic id would give the value away; an indicator whose pattern names it; the
sender's own identity object) are withheld instead, and containers drop their references to them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway.model import StixObject
from gateway.stixjson import NON_CONTENT_REFS, SCO_TYPES

REDACTED = "[REDACTED]"
# Candidates only: each is checked with ipaddress. A trailing '.' (end of a sentence) or ':' (a port) is not
# part of an address, so the look-arounds allow them.
_IPV4_CANDIDATE = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?!\d|\.\d)")
_IPV6_CANDIDATE = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$", re.IGNORECASE)
# Keys whose values are structure, not content: never rewritten.
_STRUCTURAL = frozenset({"type", "id", "spec_version", "created", "modified", "extension_type"})
_RECIPIENT_REFS = ("to_refs", "cc_refs", "bcc_refs")
_RECIPIENT_HEADERS = frozenset({"to", "cc", "bcc", "delivered-to", "x-original-to", "envelope-to"})


class Redactor:
    """Finds and replaces private values: CIDRs and IPs, domains (with subdomains and addresses), names."""

    def __init__(self, values: Iterable[str]) -> None:
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        words: list[str] = []
        for value in (v.strip() for v in values):
            if not value:
                continue
            try:
                self.networks.append(ipaddress.ip_network(value, strict=False))
                continue
            except ValueError:
                pass
            if _DOMAIN.match(value):  # a domain covers its subdomains and every address at them
                words.append(r"(?:[\w.+%-]+@)?(?:[a-z0-9-]+\.)*" + re.escape(value))
            else:
                words.append(re.escape(value))
        words.sort(key=len, reverse=True)
        self._words = re.compile("|".join(words), re.IGNORECASE) if words else None

    def __bool__(self) -> bool:
        return bool(self.networks) or self._words is not None

    def _private_ip(self, text: str) -> bool:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return False
        return any(address in net for net in self.networks if net.version == address.version)

    def redact(self, text: str) -> str:
        """The text with every private value replaced by [REDACTED]."""
        if self._words is not None:
            text = self._words.sub(REDACTED, text)
        if self.networks:
            for candidates in (_IPV4_CANDIDATE, _IPV6_CANDIDATE):
                text = candidates.sub(lambda m: REDACTED if self._private_ip(m.group(0)) else m.group(0), text)
        return text

    def touches(self, value: Any) -> bool:
        """True if a private value occurs anywhere in a (nested) value."""
        if isinstance(value, str):
            return self.redact(value) != value
        if isinstance(value, dict):
            return any(self.touches(v) for v in value.values())
        if isinstance(value, list):
            return any(self.touches(v) for v in value)
        return False


@dataclass
class Anonymized:
    """The anonymised objects (None where withheld), and the ids withheld with the reason why."""

    objects: list[StixObject | None]
    withheld: dict[str, str] = field(default_factory=dict)


def anonymize(
    objects: list[StixObject], redactor: Redactor, hub_identity_id: str, sender_identity_names: Iterable[str]
) -> Anonymized:
    """Anonymise the objects of one input. Pure: returns new dicts, in the same order."""
    by_id = {o["id"]: o for o in objects}
    names = {n.lower() for n in sender_identity_names}
    sender_ids = {o["created_by_ref"] for o in objects if isinstance(o.get("created_by_ref"), str)}
    withheld: dict[str, str] = {}
    for obj_id, obj in by_id.items():
        if obj["type"] == "identity" and (obj_id in sender_ids or str(obj.get("name", "")).lower() in names):
            withheld[obj_id] = "anonymize:sender-identity"
        elif _identified_by_private_value(obj, redactor):
            withheld[obj_id] = "anonymize:private-value"
    withheld.update(_recipients(by_id))

    # Withholding one object can orphan another (a relationship to it, a report of only it): repeat until
    # nothing changes, so the outcome does not depend on the order of the bundle.
    while True:
        blocked = set(withheld)
        newly = {o["id"] for o in objects if o["id"] not in blocked and _scrub(o, redactor, blocked) is None}
        if not newly:
            break
        withheld.update(dict.fromkeys(newly, "anonymize:refers-to-private-object"))
    out: list[StixObject | None] = []
    blocked = set(withheld)
    for obj in objects:
        clean = None if obj["id"] in blocked else _scrub(obj, redactor, blocked)
        if clean is not None and "created_by_ref" in clean:
            clean["created_by_ref"] = hub_identity_id
        out.append(clean)
    return Anonymized(out, withheld)


def _identified_by_private_value(obj: StixObject, redactor: Redactor) -> bool:
    """An SCO (whose id derives from its values) or an indicator whose pattern names a private value.

    Redacting those would leave a pattern that matches nothing, or an id that still gives the value away.
    """
    if obj["type"] in SCO_TYPES:
        return redactor.touches({k: v for k, v in obj.items() if k not in _STRUCTURAL})
    return obj["type"] == "indicator" and redactor.touches(obj.get("pattern", ""))


def _recipients(objects: dict[str, StixObject]) -> dict[str, str]:
    """The addresses a reported mail was sent to: the reporter's colleagues, never to leave the hub."""
    recipient_ids: set[str] = set()
    for obj in objects.values():
        if obj["type"] != "email-message":
            continue
        for key in _RECIPIENT_REFS:
            recipient_ids.update(r for r in obj.get(key) or () if isinstance(r, str))
    return {i: "anonymize:mail-recipient" for i in recipient_ids if i in objects}


def _scrub(obj: StixObject, redactor: Redactor, withheld: set[str]) -> StixObject | None:
    """Redact text and drop references to withheld objects. None if the object cannot stand without them."""
    out: StixObject = {}
    for key, value in obj.items():
        if key in _STRUCTURAL or key in NON_CONTENT_REFS:
            out[key] = value
        elif obj["type"] == "email-message" and key in _RECIPIENT_REFS:
            continue
        elif obj["type"] == "email-message" and key == "additional_header_fields" and isinstance(value, dict):
            out[key] = {h: _redact_value(v, redactor) for h, v in value.items() if h.lower() not in _RECIPIENT_HEADERS}
        elif key.endswith("_refs") and isinstance(value, list):
            kept = [r for r in value if r not in withheld]
            if kept or not value:
                out[key] = kept
            elif key == "object_refs":
                return None  # a report or grouping with nothing left to point at
        elif key.endswith("_ref") and isinstance(value, str):
            if value in withheld:
                return None  # a relationship or sighting that would name a private object
            out[key] = value
        else:
            out[key] = _redact_value(value, redactor)
    return out


def _redact_value(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, str):
        return redactor.redact(value)
    if isinstance(value, dict):
        return {k: (v if k in _STRUCTURAL else _redact_value(v, redactor)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(v, redactor) for v in value]
    return value
