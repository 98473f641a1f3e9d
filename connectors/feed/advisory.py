"""An advisory as every feed dialect describes it, before it is STIX."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Cvss:
    score: float
    severity: str | None = None
    vector: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class Advisory:
    key: str  # what makes it the same advisory in two polls or two feeds: its id, else its link
    title: str
    summary: str  # plain text
    published: str | None  # RFC 3339 UTC, as STIX wants it
    updated: str | None
    link: str | None = None
    advisory_id: str | None = None  # JVNDB-2024-000001, a KEV entry's CVE id...
    source_name: str = "feed"
    cves: tuple[str, ...] = ()
    cvss: Cvss | None = None
    action: str | None = None  # what to do (KEV's requiredAction)
    cpes: tuple[str, ...] = ()
    extra_refs: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # (source, url)
    raw: bytes = field(default=b"", compare=False, repr=False)  # the item as it came, kept with its input


@dataclass(frozen=True)
class BadItem:
    """An item this dialect could not read: quarantined alone, the rest of the feed goes on."""

    name: str
    raw: bytes
    reason: str
    detail: str
