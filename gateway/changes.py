"""Follow-ups: what changed between the version a destination already has and the new one, as a STIX note.

A recipient of a "second report" should see at once what is new. The note (STIX 2.1 section 4.13)
refers to the object, carries the same TLP and scope, and says in plain words which properties were
added, removed or changed; `x_renkei_changes` holds the same as data for machines.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.model import StixObject
from gateway.normalize import RENKEI_EXTENSION_ID

# Properties that change with every version: not news to a reader. (Renkei's own extension is dropped below.)
_NOT_NEWS = frozenset({"modified"})
_SHOWN_CHARS = 160
_NOTE_NAMESPACE = uuid.UUID("2d6f4e0a-8f57-5a53-9a3c-52656e6b6563")


@dataclass
class Changes:
    added: dict[str, Any] = field(default_factory=dict)
    removed: dict[str, Any] = field(default_factory=dict)
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def headline(self) -> str:
        parts = [
            f"{len(v)} {k}"
            for k, v in (("changed", self.changed), ("added", self.added), ("removed", self.removed))
            if v
        ]
        return ", ".join(parts) or "no visible change"


def diff(old: StixObject, new: StixObject) -> Changes:
    """Top-level properties added, removed and changed (extensions compared apart from Renkei's own)."""
    old, new = _without_bookkeeping(old), _without_bookkeeping(new)
    changes = Changes()
    for key in new.keys() - _NOT_NEWS:
        if key not in old:
            changes.added[key] = new[key]
        elif old[key] != new[key]:
            changes.changed[key] = (old[key], new[key])
    for key in old.keys() - _NOT_NEWS - new.keys():
        changes.removed[key] = old[key]
    return changes


def _without_bookkeeping(obj: StixObject) -> StixObject:
    extensions = {k: v for k, v in (obj.get("extensions") or {}).items() if k != RENKEI_EXTENSION_ID}
    out = {k: v for k, v in obj.items() if k != "extensions"}
    if extensions:
        out["extensions"] = extensions
    return out


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    text = " ".join(text.split())
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def describe(obj: StixObject, old_version: str, new_version: str, changes: Changes) -> str:
    """Plain words a person reads in a second: what is new since the version they received."""
    title = obj.get("name") or obj.get("id")
    lines = [f'Update to {obj["type"]} "{title}": version {new_version} replaces {old_version}, which you received.']
    lines += [f"- changed {k}: {_show(a)} -> {_show(b)}" for k, (a, b) in sorted(changes.changed.items())]
    lines += [f"- added {k}: {_show(v)}" for k, v in sorted(changes.added.items())]
    lines += [f"- removed {k} (was {_show(v)})" for k, v in sorted(changes.removed.items())]
    return "\n".join(lines)


def change_note(
    obj: StixObject, versions: tuple[str, str], changes: Changes, author_id: str, created: str
) -> StixObject:
    """The note that travels with an update: `versions` is (the one the destination had, the new one).

    Same id for every destination that had the same old version.
    """
    old_version, new_version = versions
    note_id = uuid.uuid5(_NOTE_NAMESPACE, f"{obj['id']}|{old_version}|{new_version}")
    return {
        "type": "note",
        "spec_version": "2.1",
        "id": f"note--{note_id}",
        "created": created,
        "modified": created,
        "created_by_ref": author_id,
        "abstract": f"Follow-up: {changes.headline()}",
        "content": describe(obj, old_version, new_version, changes),
        "object_refs": [obj["id"]],
        "object_marking_refs": list(obj.get("object_marking_refs", [])),
        "extensions": {RENKEI_EXTENSION_ID: obj["extensions"][RENKEI_EXTENSION_ID]},
        "x_renkei_changes": {
            "previous_version": old_version,
            "version": new_version,
            "added": sorted(changes.added),
            "removed": sorted(changes.removed),
            "changed": sorted(changes.changed),
        },
    }
