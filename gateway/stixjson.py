"""Reading STIX bundles safely: I-JSON only (RFC 7493), bounded work, clear reasons for what is refused.

Every refusal is an `InputRefused` with a short machine-readable reason, so the caller can
quarantine the raw bytes with it. Object-level problems are `ObjectInvalid`, so one bad object
quarantines that object, not its whole bundle.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from gateway.model import StixObject

MAX_INPUT_BYTES = 25 * 1024 * 1024
MAX_OBJECTS = 10_000
MAX_DEPTH = 64
MAX_SAFE_INT = 2**53 - 1  # I-JSON: integers beyond this do not survive other parsers
FUTURE_SKEW = timedelta(days=1)

_ID = re.compile(
    r"^([a-z0-9][a-z0-9-]*[a-z0-9]|[a-z0-9])--([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
# STIX Cyber-observable types (2.1 section 6): no created/modified, spec_version optional.
SCO_TYPES = frozenset(
    {
        "artifact", "autonomous-system", "directory", "domain-name", "email-addr", "email-message",
        "file", "ipv4-addr", "ipv6-addr", "mac-addr", "mutex", "network-traffic", "process",
        "software", "url", "user-account", "windows-registry-key", "x509-certificate",
    }
)  # fmt: skip
_NO_MODIFIED = frozenset({"marking-definition"})
# Properties whose values are ids of other objects, but that do not make an object a container.
NON_CONTENT_REFS = frozenset({"created_by_ref", "object_marking_refs", "marking_ref"})


class InputRefused(ValueError):
    """The whole input cannot be read as STIX. `reason` is machine-readable, the message for people."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ObjectInvalid(ValueError):
    """One object is not valid STIX 2.1."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dupe = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise InputRefused("json:duplicate-key", f"duplicate key {dupe!r}: not I-JSON (RFC 7493)")
    return out


def _no_constant(name: str) -> Any:
    raise InputRefused("json:non-finite-number", f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise InputRefused("json:non-finite-number", f"{text[:40]} overflows to infinity: not I-JSON")
    return value


def load_bundle(raw: bytes) -> list[StixObject]:
    """The objects of a STIX 2.1 bundle. Raises InputRefused for anything else."""
    if len(raw) > MAX_INPUT_BYTES:
        raise InputRefused("input:too-large", f"{len(raw):,} bytes is over the {MAX_INPUT_BYTES:,}-byte cap")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputRefused("json:not-utf8", f"not UTF-8 at byte {exc.start}") from exc
    text = text.removeprefix("\ufeff")
    try:
        data = json.loads(
            text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant, parse_float=_finite_float
        )
    except InputRefused:
        raise
    except RecursionError as exc:
        raise InputRefused("json:too-deep", "nesting too deep") from exc
    except ValueError as exc:  # JSONDecodeError, and int digits over Python's limit
        raise InputRefused("json:invalid", f"not JSON: {str(exc)[:200]}") from exc
    if not isinstance(data, dict) or data.get("type") != "bundle":
        raise InputRefused("stix:not-a-bundle", "not a STIX bundle (a JSON object with type 'bundle')")
    objects = data.get("objects", [])
    if not isinstance(objects, list):
        raise InputRefused("stix:not-a-bundle", "bundle 'objects' is not a list")
    if len(objects) > MAX_OBJECTS:
        raise InputRefused("input:too-many-objects", f"{len(objects):,} objects is over the {MAX_OBJECTS:,} cap")
    return objects


@dataclass
class Checked:
    """A valid object, and the ids it refers to in its content (for rule 9)."""

    obj: StixObject
    content_refs: list[str]


def check_object(obj: Any, now: datetime) -> Checked:
    """Validate one object cheaply (the full stix2-validator is for tests). Raises ObjectInvalid."""
    if not isinstance(obj, dict):
        raise ObjectInvalid("stix:not-an-object", "bundle item is not a JSON object")
    obj_type, obj_id = obj.get("type"), obj.get("id")
    if not isinstance(obj_type, str) or not isinstance(obj_id, str):
        raise ObjectInvalid("stix:missing-type-or-id", "object without type or id")
    match = _ID.match(obj_id)
    if not match:
        raise ObjectInvalid("stix:invalid-id", "id is not '<type>--<uuid>'")
    if match.group(1) != obj_type:
        raise ObjectInvalid("stix:id-type-mismatch", f"id prefix {match.group(1)!r} is not the type {obj_type!r}")
    if obj_type not in SCO_TYPES:
        if obj.get("spec_version") != "2.1":
            raise ObjectInvalid("stix:not-2.1", f"spec_version {obj.get('spec_version')!r} is not '2.1'")
        _check_times(obj, obj_type, now)
    elif obj.get("spec_version", "2.1") != "2.1":
        raise ObjectInvalid("stix:not-2.1", "spec_version is not '2.1'")
    refs: list[str] = []
    _walk(obj, 2, refs)  # the bundle and its list are the first levels
    return Checked(obj, refs)


def content_refs(obj: StixObject) -> list[str]:
    """The ids an (already checked) object refers to in its content, for rule 9."""
    refs: list[str] = []
    _walk(obj, 2, refs)
    return refs


def _check_times(obj: StixObject, obj_type: str, now: datetime) -> None:
    created = obj.get("created")
    if not isinstance(created, str) or not _TIMESTAMP.match(created):
        raise ObjectInvalid("stix:invalid-timestamp", "created is missing or not an RFC 3339 UTC timestamp")
    created_at = _instant(created)
    if obj_type in _NO_MODIFIED:
        return
    modified = obj.get("modified")
    if modified is created or modified == created:
        modified_at = created_at
    elif not isinstance(modified, str) or not _TIMESTAMP.match(modified):
        raise ObjectInvalid("stix:invalid-timestamp", "modified is missing or not an RFC 3339 UTC timestamp")
    else:
        modified_at = _instant(modified)
        if modified_at < created_at:
            raise ObjectInvalid("stix:modified-before-created", f"modified {modified} is before created {created}")
    if modified_at[0] > _latest_allowed(now):
        raise ObjectInvalid("stix:modified-in-future", f"modified {modified} is in the future")


def _instant(text: str) -> tuple[datetime, str]:
    """(the second, the fraction padded): comparable, without parsing time zones (STIX times are UTC, 'Z')."""
    try:
        second = datetime.fromisoformat(text[:19])
    except ValueError as exc:
        raise ObjectInvalid("stix:invalid-timestamp", f"{text!r} is not a valid time") from exc
    return second, text[20:-1].ljust(9, "0")


@lru_cache(maxsize=8)
def _latest_allowed(now: datetime) -> datetime:
    return (now.astimezone(UTC) + FUTURE_SKEW).replace(tzinfo=None)


def _walk(obj: dict[str, Any], depth: int, refs: list[str]) -> None:
    """One pass over the object: depth cap, I-JSON numbers and strings, and the ids it refers to.

    Scalars are handled inline rather than by recursion: this runs for every object of every input.
    """
    if depth > MAX_DEPTH:
        raise ObjectInvalid("json:too-deep", f"nested deeper than {MAX_DEPTH}")
    for key, value in obj.items():
        if not key.isascii():
            _check_text(key)
        kind = type(value)
        if kind is str:
            if not value.isascii():
                _check_text(value)
            if (key[-4:] == "_ref" or key[-5:] == "_refs") and key not in NON_CONTENT_REFS:
                refs.append(value)
        elif kind is dict:
            _walk(value, depth + 1, refs)
        elif kind is list:
            _walk_list(value, depth + 1, refs, key)
        elif kind is int and (value > MAX_SAFE_INT or value < -MAX_SAFE_INT):
            raise ObjectInvalid("json:integer-out-of-range", "integer outside the I-JSON range (±2^53)")


def _walk_list(items: list[Any], depth: int, refs: list[str], key: str) -> None:
    if depth > MAX_DEPTH:
        raise ObjectInvalid("json:too-deep", f"nested deeper than {MAX_DEPTH}")
    is_ref = (key[-4:] == "_ref" or key[-5:] == "_refs") and key not in NON_CONTENT_REFS
    for value in items:
        kind = type(value)
        if kind is str:
            if not value.isascii():
                _check_text(value)
            if is_ref:
                refs.append(value)
        elif kind is dict:
            _walk(value, depth + 1, refs)
        elif kind is list:
            _walk_list(value, depth + 1, refs, key)
        elif kind is int and (value > MAX_SAFE_INT or value < -MAX_SAFE_INT):
            raise ObjectInvalid("json:integer-out-of-range", "integer outside the I-JSON range (±2^53)")


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ObjectInvalid("json:lone-surrogate", "string with a lone surrogate: not I-JSON") from exc


def definitions_of(objects: list[StixObject]) -> Iterator[StixObject]:
    """The marking- and extension-definition objects of a bundle."""
    return (
        o for o in objects if isinstance(o, dict) and o.get("type") in ("marking-definition", "extension-definition")
    )
