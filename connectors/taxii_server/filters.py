"""The TAXII 2.1 query parameters of the objects and manifest endpoints, read once and checked.

Spec section 3.6: `added_after`, `limit`, `next`, and `match[id|type|version|spec_version]` (comma-separated
values; `version` is `last` by default, or `first`, `all`, or timestamps).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.aws.collections import object_version
from connectors.taxii_server.cursor import CursorForged, decode

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100

# Spans of a batch of object ids in a collection: id -> (first version, last version).
Spans = Callable[[set[str]], dict[str, tuple[str, str]]]


class BadQuery(ValueError):
    """A parameter the server cannot honour; answered with 400 and this text."""


@dataclass(frozen=True)
class Query:
    limit: int
    after: str | None  # a position in the by-date-added index (from `next`, or `added_after`)
    ids: frozenset[str]
    types: frozenset[str]
    versions: frozenset[str]  # "last", "first", "all", or timestamps
    spec_versions: frozenset[str]

    def selector(self, spans: Spans) -> Callable[[list[dict[str, Any]]], list[bool]]:
        """Keeps the objects the query asks for, reading the version spans of a whole batch at once."""

        def select(batch: list[dict[str, Any]]) -> list[bool]:
            wanted = [self._matches_fields(o) for o in batch]
            if "all" in self.versions:
                return wanted
            needs_span = {o["id"] for o, keep in zip(batch, wanted, strict=True) if keep}
            span = spans(needs_span) if ({"first", "last"} & self.versions) and needs_span else {}
            return [keep and self._matches_version(o, span.get(o["id"])) for o, keep in zip(batch, wanted, strict=True)]

        return select

    def _matches_fields(self, obj: dict[str, Any]) -> bool:
        if self.ids and obj.get("id") not in self.ids:
            return False
        if self.types and obj.get("type") not in self.types:
            return False
        return not self.spec_versions or obj.get("spec_version", "2.1") in self.spec_versions

    def _matches_version(self, obj: dict[str, Any], span: tuple[str, str] | None) -> bool:
        version = object_version(obj)
        if _same_instant(version) in self.versions:
            return True
        if span is None:
            return False
        return ("first" in self.versions and version == span[0]) or ("last" in self.versions and version == span[1])

    def keeps_version(self, version: str, first: str, last: str) -> bool:
        """For one object's versions endpoint: the same version filter, with its span known."""
        if "all" in self.versions or _same_instant(version) in self.versions:
            return True
        return ("first" in self.versions and version == first) or ("last" in self.versions and version == last)


def read_query(params: Mapping[str, str], cursor_key: bytes, default_versions: str = "last") -> Query:
    """Raises BadQuery."""
    try:
        limit = int(params.get("limit", DEFAULT_LIMIT))
    except ValueError:
        raise BadQuery("limit must be a whole number") from None
    if limit < 1:
        raise BadQuery("limit must be at least 1")
    after: str | None = None
    if params.get("next"):
        try:
            after = decode(params["next"], cursor_key)
        except (CursorForged, UnicodeDecodeError) as forged:
            raise BadQuery(f"next: {forged}") from None
    elif params.get("added_after"):
        # Index keys are "<date added, microseconds>Z#<id>#<version>": "~" sorts after "#", so the key of
        # an object added at exactly that instant is not after it.
        after = timestamp(params["added_after"]) + "~"
    return Query(
        limit=min(limit, MAX_LIMIT),
        after=after,
        ids=_values(params, "match[id]"),
        types=_values(params, "match[type]"),
        versions=frozenset(map(_same_instant, _values(params, "match[version]"))) or frozenset({default_versions}),
        spec_versions=_values(params, "match[spec_version]"),
    )


def timestamp(text: str) -> str:
    """A STIX/TAXII timestamp in the index's form (UTC, microseconds). Raises BadQuery."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadQuery(f"{text!r} is not a timestamp") from None
    if moment.tzinfo is None:
        raise BadQuery(f"{text!r} has no time zone (TAXII timestamps are UTC, ending in Z)")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _same_instant(version: str) -> str:
    """Versions compared as instants: `...00.1Z` and `...00.100Z` are the same version."""
    if version in ("first", "last", "all"):
        return version
    try:
        return timestamp(version)
    except BadQuery:
        return version


def _values(params: Mapping[str, str], name: str) -> frozenset[str]:
    return frozenset(v.strip() for v in params.get(name, "").split(",") if v.strip())
