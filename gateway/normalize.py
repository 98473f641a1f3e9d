"""Normalise: every object leaves with one TLP 2.0 marking and Renkei's extension (scope, hops, source).

The Renkei extension is a STIX 2.1 property extension (section 7.3); its extension-definition
object is published here and shipped with every delivery that uses it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from gateway import scope as scopes
from gateway.model import SenderPolicy, StixObject
from gateway.route import Routable
from gateway.tlp import TLP1_IDS, TLP2_IDS, is_tlp_marking, read_tlp, tlp1_equivalent
from schemas.config import Scope
from schemas.tlp import Tlp

RENKEI_NAMESPACE = uuid.UUID("6c0f7a5e-2f0b-5a7e-9a55-52656e6b6569")
RENKEI_IDENTITY_ID = f"identity--{uuid.uuid5(RENKEI_NAMESPACE, 'renkei-project')}"
RENKEI_EXTENSION_ID = f"extension-definition--{uuid.uuid5(RENKEI_NAMESPACE, 'sharing-scope/1.0')}"

RENKEI_IDENTITY: StixObject = {
    "type": "identity",
    "spec_version": "2.1",
    "id": RENKEI_IDENTITY_ID,
    "created": "2026-01-01T00:00:00.000Z",
    "modified": "2026-01-01T00:00:00.000Z",
    "name": "Renkei project",
    "identity_class": "organization",
}

RENKEI_EXTENSION_DEFINITION: StixObject = {
    "type": "extension-definition",
    "spec_version": "2.1",
    "id": RENKEI_EXTENSION_ID,
    "created_by_ref": RENKEI_IDENTITY_ID,
    "created": "2026-01-01T00:00:00.000Z",
    "modified": "2026-01-01T00:00:00.000Z",
    "name": "Renkei sharing scope",
    "description": (
        "The effective TLP, the sender's sharing scope (share_with / exclude) and the hubs an object has "
        "passed through. Relays intersect the scope, never widen it, and drop objects that list them as a hop."
    ),
    "schema": "https://github.com/renkei-cti/renkei/blob/main/schemas/renkei-sharing-scope.schema.json",
    "version": "1.0.0",
    "extension_types": ["property-extension"],
}


@dataclass(frozen=True)
class Carried:
    """What earlier hops attached to an object."""

    tlp: Tlp | None
    scope: Scope | None
    hops: tuple[str, ...]
    named_by_sender: bool = True


class CarriedInvalid(ValueError):
    """The Renkei extension on an input object is malformed: it cannot be trusted to narrow anything."""


def carried(obj: StixObject) -> Carried:
    """Read the Renkei extension of an object relayed by another hub. Raises CarriedInvalid."""
    ext = (obj.get("extensions") or {}).get(RENKEI_EXTENSION_ID)
    if ext is None:
        return Carried(None, None, ())
    if not isinstance(ext, dict):
        raise CarriedInvalid("renkei extension is not an object")
    try:
        if "tlp" in ext and not isinstance(ext["tlp"], str):
            raise ValueError("tlp is not a string")
        level = Tlp.parse(ext["tlp"]) if "tlp" in ext else None
        scope = scopes.from_json(ext["scope"]) if "scope" in ext else None
    except (ValueError, ValidationError) as exc:
        raise CarriedInvalid(f"renkei extension: {exc.__class__.__name__}") from exc
    hops = ext.get("hops", [])
    if not isinstance(hops, list) or not all(isinstance(h, str) for h in hops):
        raise CarriedInvalid("renkei extension: hops must be a list of hub ids")
    named = ext.get("named_by_sender", True)
    if not isinstance(named, bool):
        raise CarriedInvalid("renkei extension: named_by_sender must be true or false")
    named = named and scope is not None and not scope.shares_with_all
    return Carried(level, scope, tuple(hops), named)


@dataclass
class Normalized:
    """One input object, normalised, with what dedupe and routing need."""

    original: StixObject
    obj: StixObject
    routable: Routable
    version: str
    content_hash: str
    unknown_markings: list[str]
    statement_markings: list[str]  # non-TLP markings (copyright, terms of use) that travel with it


def content_hash(obj: Mapping[str, Any]) -> str:
    """sha256 of the object's content, leaving out what relays legitimately rewrite (markings, our extension)."""
    stripped = {k: v for k, v in obj.items() if k not in ("object_marking_refs", "granular_markings")}
    extensions = stripped.get("extensions")
    if isinstance(extensions, dict) and RENKEI_EXTENSION_ID in extensions:
        others = {k: v for k, v in extensions.items() if k != RENKEI_EXTENSION_ID}
        if others:
            stripped["extensions"] = others
        else:
            del stripped["extensions"]
    return hashlib.sha256(orjson.dumps(stripped, option=orjson.OPT_SORT_KEYS)).hexdigest()


def version_of(obj: Mapping[str, Any], digest: str) -> str:
    """`modified`, else `created`; objects without timestamps (SCOs) are versioned by content."""
    stamp = obj.get("modified") or obj.get("created")
    return str(stamp) if stamp else f"sha256:{digest[:32]}"


def normalize(
    obj: StixObject,
    definitions: Mapping[str, StixObject],
    sender: SenderPolicy,
    hub_id: str,
    envelope_hops: tuple[str, ...] = (),
    sender_scope_json: dict[str, Any] | None = None,
) -> Normalized:
    """The effective TLP (contract rule 1), the scope narrowed by what earlier hops carried, one marking.

    `sender_scope_json` is `scope.to_json(sender.scope)`, passed in so a run computes it once.
    Raises CarriedInvalid when the object carries a malformed Renkei extension.
    """
    previous = carried(obj)
    reading = read_tlp(obj, definitions, floor=sender.tlp)
    level = max(reading.level, previous.tlp) if previous.tlp is not None else reading.level
    if previous.scope is None:
        scope = sender.scope
        scope_json = sender_scope_json if sender_scope_json is not None else scopes.to_json(scope)
        named = not scope.shares_with_all
    else:
        scope = scopes.intersect(sender.scope, previous.scope)
        scope_json = scopes.to_json(scope)
        named = previous.named_by_sender
    hops = previous.hops + tuple(h for h in envelope_hops if h not in previous.hops) if envelope_hops else previous.hops

    refs = obj.get("object_marking_refs") or ()
    statements = [r for r in refs if isinstance(r, str) and not is_tlp_marking(r, definitions)]
    if len(statements) > 1:
        statements = list(dict.fromkeys(statements))
    out = dict(obj)
    out["object_marking_refs"] = [TLP2_IDS[level], *statements]
    granular = [
        g
        for g in obj.get("granular_markings") or ()
        if isinstance(g, dict) and not is_tlp_marking(str(g.get("marking_ref")), definitions)
    ]
    if granular:
        out["granular_markings"] = granular
    else:
        out.pop("granular_markings", None)
    extensions = dict(obj.get("extensions") or {})
    extensions[RENKEI_EXTENSION_ID] = {
        "extension_type": "property-extension",
        "tlp": level.label,
        "scope": scope_json,
        "hops": [*hops, hub_id],
    }
    if not named:
        extensions[RENKEI_EXTENSION_ID]["named_by_sender"] = False
    out["extensions"] = extensions
    digest = content_hash(obj)
    return Normalized(
        original=obj,
        obj=out,
        routable=Routable(obj=out, tlp=level, scope=scope, hops=hops, named_by_sender=named),
        version=version_of(obj, digest),
        content_hash=digest,
        unknown_markings=reading.unknown,
        statement_markings=[*statements, *(g["marking_ref"] for g in granular if g["marking_ref"] not in statements)],
    )


def with_source(obj: StixObject, source: dict[str, str]) -> None:
    """Show recipients where the object came from (or the sealed pseudonym when anonymised)."""
    obj["extensions"][RENKEI_EXTENSION_ID]["source"] = source


def with_tlp1(obj: StixObject, level: Tlp) -> StixObject:
    """A copy that also carries the TLP 1.0 marking, for a destination's legacy tools (never weaker)."""
    out = dict(obj)
    out["object_marking_refs"] = [*obj["object_marking_refs"], TLP1_IDS[tlp1_equivalent(level)]]
    return out
