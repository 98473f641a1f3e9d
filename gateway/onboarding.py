"""Onboarding: what a new hub config changes against the registry, as people read it, and the record kept of it."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel

from gateway.errors import NotOnboarded
from gateway.scope import is_within
from gateway.senders import sender_for
from schemas.config import (
    Community,
    Connector,
    EmailConnector,
    HubConfig,
    Scope,
    parse_duration,
)
from schemas.schedules import polling, rate_expression
from schemas.tlp import Tlp

if TYPE_CHECKING:
    from gateway.model import SenderPolicy
    from gateway.ports import RegistryStore

Action = Literal["added", "changed", "removed"]
Section = Literal["hub", "community", "connector", "member", "schedule"]

_SYMBOL: dict[Action, str] = {"added": "+", "changed": "~", "removed": "-"}
_ACTIONS: tuple[Action, ...] = ("added", "changed", "removed")
_SECTIONS: tuple[Section, ...] = ("hub", "community", "connector", "member", "schedule")


# --- schedules ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """One polling connector's schedule: `every` as written (or its type's default)."""

    connector: str
    every: str

    @property
    def interval(self) -> timedelta:
        return parse_duration(self.every)

    @property
    def expression(self) -> str:
        """The EventBridge Scheduler form, e.g. `rate(15 minutes)`."""
        return rate_expression(self.every)


def schedules_of(config: HubConfig) -> dict[str, Schedule]:
    """The schedule of every polling connector, by connector id."""
    return {connector_id: Schedule(connector_id, every) for connector_id, every in polling(config).items()}


# --- the diff ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One community, connector, member, schedule (or the hub) added, changed or removed, field by field."""

    action: Action
    section: Section
    name: str
    details: tuple[str, ...] = ()

    def render(self) -> list[str]:
        head = f"{_SYMBOL[self.action]} {self.section} {self.name}"
        if self.action == "removed":
            return [f"{head} ({'; '.join(self.details)})" if self.details else head]
        if len(self.details) == 1:
            return [f"{head}: {self.details[0]}"]
        return [head, *(f"    {line}" for line in self.details)]


@dataclass(frozen=True)
class Widening:
    """A sender whose effective scope got wider, TLP weaker or protections looser, and how."""

    connector: str
    member: str | None
    changes: tuple[str, ...]

    @property
    def sender(self) -> str:
        return f"member {self.member} of {self.connector}" if self.member else f"connector {self.connector}"

    def render(self) -> str:
        return f"! widens {self.sender}: {'; '.join(self.changes)}"

    def to_json(self) -> dict[str, Any]:
        return {"connector": self.connector, "member": self.member, "changes": list(self.changes)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Widening:
        return cls(data["connector"], data.get("member"), tuple(data["changes"]))


@dataclass(frozen=True)
class ConfigDiff:
    """Everything a new config changes, and the senders it widens."""

    entries: tuple[Entry, ...] = ()
    widenings: tuple[Widening, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.entries

    def names(self, section: Section, action: Action) -> list[str]:
        """Ids (or `match of connector` for members) of one section that the change adds, changes or removes."""
        return [e.name for e in self.entries if e.section == section and e.action == action]

    def render(self, include_widenings: bool = True) -> list[str]:
        """Lines for people: `+` added, `~` changed, `-` removed, `!` a sender this change widens."""
        lines = [line for entry in self.entries for line in entry.render()]
        if include_widenings:
            lines += [w.render() for w in self.widenings]
        return lines


def diff_configs(old: HubConfig | None, new: HubConfig) -> ConfigDiff:
    """What `new` changes against `old` (None: nothing onboarded yet, so everything is added)."""
    entries: list[Entry] = []
    if old is None:
        entries.append(Entry("added", "hub", new.hub.id, tuple(_summary(new.hub))))
    else:
        hub_changes = _changes(old.hub, new.hub)
        if hub_changes:
            entries.append(Entry("changed", "hub", new.hub.id, tuple(hub_changes)))
    entries += _keyed("community", _ids(old.communities if old else []), _ids(new.communities))
    entries += _keyed("connector", _ids(old.connectors if old else []), _ids(new.connectors))
    entries += _member_entries(old, new)
    entries += _schedule_entries(schedules_of(old) if old else {}, schedules_of(new))
    order = {(s, a): i for i, (s, a) in enumerate((s, a) for s in _SECTIONS for a in _ACTIONS)}
    entries.sort(key=lambda e: order[(e.section, e.action)])  # stable: config order within a group
    return ConfigDiff(tuple(entries), tuple(_widenings(old, new)) if old else ())


def _ids(items: list[Community] | list[Connector]) -> dict[str, BaseModel]:
    return {item.id: item for item in items}


def _keyed(section: Section, old: dict[str, BaseModel], new: dict[str, BaseModel]) -> list[Entry]:
    entries: list[Entry] = []
    for name, item in new.items():
        if name not in old:
            entries.append(Entry("added", section, name, tuple(_summary(item))))
        else:
            changes = _changes(old[name], item)
            if changes:
                entries.append(Entry("changed", section, name, tuple(changes)))
    for name, item in old.items():
        if name not in new:
            entries.append(Entry("removed", section, name, tuple(_removed_note(item))))
    return entries


def _removed_note(item: BaseModel) -> list[str]:
    if isinstance(item, EmailConnector) and item.members:
        return [f"email, with its {len(item.members)} member(s)"]
    kind = getattr(item, "kind", None) or getattr(item, "type", None)
    return [str(kind)] if kind else []


def _members(config: HubConfig | None) -> dict[str, BaseModel]:
    if config is None:
        return {}
    return {f"{m.match} of {c.id}": m for c in config.connectors if isinstance(c, EmailConnector) for m in c.members}


def _member_entries(old: HubConfig | None, new: HubConfig) -> list[Entry]:
    # A removed mailbox says how many members went with it; its members are not listed one by one.
    kept = {c.id for c in new.connectors if isinstance(c, EmailConnector)}
    entries = _keyed("member", _members(old), _members(new))
    return [e for e in entries if e.action != "removed" or e.name.rpartition(" of ")[2] in kept]


def _schedule_entries(old: dict[str, Schedule], new: dict[str, Schedule]) -> list[Entry]:
    entries: list[Entry] = []
    for name, schedule in new.items():
        held = old.get(name)
        if held is None:
            entries.append(Entry("added", "schedule", name, (f"every {schedule.every} ({schedule.expression})",)))
        elif held.expression != schedule.expression:
            detail = f"every {held.every} -> {schedule.every} ({schedule.expression})"
            entries.append(Entry("changed", "schedule", name, (detail,)))
    entries += [Entry("removed", "schedule", name) for name in old if name not in new]
    return entries


# --- field by field ----------------------------------------------------------------------------------

# The id (or a member's match) is the entry's name; members are entries of their own.
_NOT_SHOWN = frozenset({"id", "match", "members"})
_FIRST = ("type", "kind", "name", "org", "community", "sender", "tlp", "scope")


def _summary(item: BaseModel) -> Iterator[str]:
    """An added item: each field that differs from its default, as `field: value`, what it is first."""
    data = item.model_dump(mode="json", exclude_defaults=True)
    keys = [k for k in _FIRST if k in data] + [k for k in data if k not in _FIRST]
    for key in keys:
        if key not in _NOT_SHOWN:
            yield f"{key}: {_show(_plain(getattr(item, key)))}"
    if isinstance(item, EmailConnector) and item.members:
        yield f"members: {len(item.members)} (below)"


def _changes(old: BaseModel, new: BaseModel, prefix: str = "") -> list[str]:
    """`field: old -> new` for every field that differs; lists as `+added -removed`; nested models by path."""
    lines: list[str] = []
    names = list(type(new).model_fields) + [n for n in type(old).model_fields if n not in type(new).model_fields]
    for name in names:
        if not prefix and name in _NOT_SHOWN:
            continue
        before, after = getattr(old, name, None), getattr(new, name, None)
        if _plain(before) == _plain(after):
            continue
        path = f"{prefix}{name}"
        if isinstance(before, BaseModel) and isinstance(after, BaseModel) and type(before) is type(after):
            lines += _changes(before, after, f"{path}.")
        elif isinstance(before, list) and isinstance(after, list):
            lines.append(f"{path}: {_list_delta(before, after)}")
        else:
            lines.append(f"{path}: {_show(_plain(before))} -> {_show(_plain(after))}")
    return lines


def _list_delta(before: list[Any], after: list[Any]) -> str:
    old = [_show(_plain(item)) for item in before]
    new = [_show(_plain(item)) for item in after]
    delta = [f"+{item}" for item in new if item not in old] + [f"-{item}" for item in old if item not in new]
    if delta:
        return " ".join(delta)
    return f"order [{', '.join(old)}] -> [{', '.join(new)}]"  # same items: only the order changed


def _plain(value: Any) -> Any:
    """A model as the JSON it would be written as (defaults left out), anything else as is."""
    if isinstance(value, Scope):  # `share_with: all` is worth reading even though it is the default
        return value.model_dump(mode="json")
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_defaults=True)
    if isinstance(value, Tlp):
        return value.label
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


_QUOTE = frozenset(",[]{}#")


def _show(value: Any) -> str:
    """YAML flow style, as the operator wrote it: `[a, b]`, `{kind: regulator}`, `(not set)`."""
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Tlp):
        return value.label
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    text = str(value)
    if not text or text != text.strip() or _QUOTE.intersection(text) or text == "(not set)":
        return repr(text)
    return text


# --- widenings ---------------------------------------------------------------------------------------


def _senders(config: HubConfig) -> dict[tuple[str, str | None], SenderPolicy]:
    """Each sender's effective policy: connectors, and e-mail members (whose own values win)."""
    out: dict[tuple[str, str | None], SenderPolicy] = {}
    for connector in config.connectors:
        if isinstance(connector, EmailConnector):
            for member in connector.members:
                out[(connector.id, member.match)] = sender_for(config, connector.id, member)
        else:
            out[(connector.id, None)] = sender_for(config, connector.id)
    return out


def _widenings(old: HubConfig, new: HubConfig) -> Iterator[Widening]:
    before = _senders(old)
    for key, now in _senders(new).items():
        held = before.get(key)
        if held is None:
            continue  # a new sender: nothing it had agreed to before
        changes = _loosened(held, now) + _reclassified(old, new, now)
        if changes:
            yield Widening(key[0], key[1], tuple(changes))


def _reclassified(old: HubConfig, new: HubConfig, sender: SenderPolicy) -> list[str]:
    """Communities the sender reaches because their kind changed away from one its scope excludes.

    The sender's own config did not change, yet `exclude: [{kind: regulator}]` no longer keeps out a
    community that was a regulator: the history must show that as a widening of this sender.
    """
    scope, changes = sender.scope, []
    for community in new.communities:
        was = old.community(community.id)
        if was is None or was.kind == community.kind or was.kind not in scope.excluded_kinds:
            continue
        listed = scope.shares_with_all or community.id in scope.share_with
        if listed and community.id not in scope.excluded_ids and community.kind not in scope.excluded_kinds:
            changes.append(f"reaches {community.id}: its kind changed {was.kind} -> {community.kind}")
    return changes


def _loosened(held: SenderPolicy, now: SenderPolicy) -> list[str]:
    """How `now` lets more out than `held`: wider scope, weaker TLP, no approval, less anonymity."""
    changes: list[str] = []
    if not is_within(now.scope, held.scope):
        changes += [f"scope.{line}" for line in _changes(held.scope, now.scope)]
    if now.tlp < held.tlp:
        changes.append(f"TLP {held.tlp.label} -> {now.tlp.label}")
    # GREEN also reaches the sender's own community (rule 6): moving it moves who gets GREEN.
    if now.tlp == Tlp.GREEN and now.community != held.community and now.community is not None:
        changes.append(f"sender community {_show(held.community)} -> {now.community} (reached at GREEN)")
    if held.approval_required and not now.approval_required:
        changes.append("approval: required -> none")
    if held.anonymize is not None and now.anonymize is None:
        changes.append("anonymize: on -> off")
    elif held.anonymize is not None and now.anonymize is not None:
        dropped = [v for v in held.anonymize.redact if v not in now.anonymize.redact]
        if dropped:
            changes.append("anonymize.redact: " + " ".join(f"-{_show(v)}" for v in dropped))
    return changes


# --- the record of an applied change -----------------------------------------------------------------


def config_json(config: HubConfig) -> str:
    """The config as the registry stores it: canonical JSON (sorted keys), so equal configs are equal bytes."""
    return orjson.dumps(config.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS).decode()


def config_from_json(text: str | bytes) -> HubConfig:
    """Read a stored config. Raises pydantic.ValidationError if the stored JSON no longer fits the model."""
    return HubConfig.model_validate_json(text)


def config_sha256(config: HubConfig) -> str:
    return hashlib.sha256(config_json(config).encode()).hexdigest()


@dataclass(frozen=True)
class ChangeRecord:
    """One applied change: who, when, what it changed (the diff's lines), whom it widened, and what it left."""

    version: int
    applied_at: str  # ISO 8601, UTC
    applied_by: str  # $USER, or the AWS caller's ARN
    lines: tuple[str, ...]
    widenings: tuple[Widening, ...] = ()
    config_sha256: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "applied_at": self.applied_at,
            "applied_by": self.applied_by,
            "lines": list(self.lines),
            "widenings": [w.to_json() for w in self.widenings],
            "config_sha256": self.config_sha256,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChangeRecord:
        return cls(
            version=int(data["version"]),
            applied_at=str(data["applied_at"]),
            applied_by=str(data["applied_by"]),
            lines=tuple(data.get("lines", ())),
            widenings=tuple(Widening.from_json(w) for w in data.get("widenings", ())),
            config_sha256=str(data.get("config_sha256", "")),
        )


def change_record(diff: ConfigDiff, config: HubConfig, applied_by: str, applied_at: str) -> ChangeRecord:
    """The record to hand to `RegistryStore.apply`; the store gives it its version number."""
    return ChangeRecord(
        version=0,
        applied_at=applied_at,
        applied_by=applied_by,
        lines=tuple(diff.render(include_widenings=False)),
        widenings=diff.widenings,
        config_sha256=config_sha256(config),
    )


def widenings_of(history: list[ChangeRecord], connector: str, member: str | None = None) -> list[ChangeRecord]:
    """The changes that widened one sender: what a sender is shown to prove nothing else ever did."""
    member = member.lower() if member else None
    return [r for r in history if any(w.connector == connector and w.member == member for w in r.widenings)]


# --- readers -----------------------------------------------------------------------------------------


@dataclass
class CachedRegistry:
    """The registry for readers, read again at most every `ttl_seconds` (seconds in `serve`, ~60 s in Lambda).

    A narrowed scope is in force everywhere within the TTL; an object is routed under the one
    (version, config) pair that `current()` returned, never a mix.
    """

    store: RegistryStore
    ttl_seconds: float
    clock: Callable[[], float] = time.monotonic
    _held: tuple[int, HubConfig] | None = field(default=None, init=False)
    _read_at: float | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def current(self) -> tuple[int, HubConfig] | None:
        """(version, config) as of at most `ttl_seconds` ago; None when nothing is onboarded."""
        with self._lock:
            now = self.clock()
            if self._read_at is None or now - self._read_at >= self.ttl_seconds:
                self._held = self.store.current()
                self._read_at = now
            return self._held

    def config(self) -> HubConfig:
        """The config. Raises NotOnboarded when the registry is empty."""
        held = self.current()
        if held is None:
            raise NotOnboarded("no routing in the registry: run `gateway onboard --config FILE` first")
        return held[1]

    def invalidate(self) -> None:
        """Read the store again on the next call (after this process applied a change itself)."""
        with self._lock:
            self._read_at = None
