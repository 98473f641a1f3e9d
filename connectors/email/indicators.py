"""Indicators in free text (defanged forms re-armed), with iocsearcher rather than hand-written patterns."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from iocsearcher.searcher import Searcher

from connectors.email.limits import MAX_INDICATORS

_KINDS = {"url": "urls", "fqdn": "domains", "email": "emails", "ip4": "ipv4s", "md5": "md5s", "sha1": "sha1s"}


@dataclass
class Found:
    urls: set[str] = field(default_factory=set)
    domains: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    ipv4s: set[str] = field(default_factory=set)
    md5s: set[str] = field(default_factory=set)
    sha1s: set[str] = field(default_factory=set)
    sha256s: set[str] = field(default_factory=set)


@cache
def _searcher() -> Searcher:
    return Searcher()


def find(text: str) -> Found:
    found = Found()
    count = 0
    for kind, value in sorted((ioc.name, str(ioc.value)) for ioc in _searcher().search_data(text)):
        attribute = "sha256s" if kind == "sha256" else _KINDS.get(kind)
        if attribute is None or count >= MAX_INDICATORS:
            continue
        getattr(found, attribute).add(value.lower() if kind in ("fqdn", "email") else value)
        count += 1
    return found
