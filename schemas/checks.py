"""Whole-file rules of a hub config that one model cannot see: ids that must exist, duplicates, secrets."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta

from schemas.config import (
    Community,
    Connector,
    EmailConnector,
    FeedConnector,
    HubConfig,
    MemberRule,
    PeerChannel,
    PeerConnector,
    PullChannel,
    Scope,
    TaxiiChannel,
    TaxiiConnector,
    parse_duration,
)
from schemas.tlp import Tlp

Loc = tuple[str | int, ...]

MIN_POLL_INTERVAL = timedelta(minutes=1)
_GLOB_CHARS = frozenset("*?[]")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: where in the YAML document (keys and list indexes), and what."""

    loc: Loc
    message: str


@dataclass(frozen=True)
class _Sender:
    """The TLP and scope that apply to one sender, and where each is written (None: not written)."""

    loc: Loc
    tlp: Tlp | None
    scope: Scope | None
    scope_loc: Loc | None
    tlp_loc: Loc | None

    @property
    def share_with_loc(self) -> Loc:
        """Where to point at a problem with the audience: its share_with, else its TLP, else the sender."""
        if self.scope_loc is not None:
            return (*self.scope_loc, "share_with")
        return self.tlp_loc if self.tlp_loc is not None else self.loc


def semantic_problems(config: HubConfig, env: Mapping[str, str] | None) -> list[Problem]:
    """Every problem of a structurally valid config, grouped by check; [] when there is none.

    `env` is the environment the hub will run with; None skips the checks of secrets (a command that
    only reads the routing, like `ingest` on another machine, must not fail on them).
    """
    problems = [
        *_duplicate_ids(config),
        *_unknown_scope_ids(config),
        *_tlp_without_audience(config),
        *_polling_too_often(config),
        *_mailbox_problems(config),
        *_peers_without_signing_key(config),
    ]
    if env is not None:
        problems.extend(_unset_secrets(config, env))
    return problems


# --- ids ---------------------------------------------------------------------------------------------


def _duplicate_ids(config: HubConfig) -> Iterator[Problem]:
    for section, items in (("communities", config.communities), ("connectors", config.connectors)):
        first: dict[str, int] = {}
        what = "community" if section == "communities" else "connector"
        for index, item in enumerate(items):
            if item.id in first:
                yield Problem(
                    (section, index, "id"),
                    f"duplicate {what} id {item.id!r} ({section}[{first[item.id]}] has it already): "
                    f"each {what} needs its own id",
                )
            first.setdefault(item.id, index)


def _known_ids(config: HubConfig) -> frozenset[str]:
    # Scopes name communities: this hub's own, or those served by other hubs of the federation.
    return frozenset(c.id for c in config.communities) | frozenset(config.hub.remote)


def _scopes(config: HubConfig) -> Iterator[tuple[Loc, Scope]]:
    for index, connector in enumerate(config.connectors):
        if connector.scope is not None:
            yield ("connectors", index, "scope"), connector.scope
        if isinstance(connector, EmailConnector):
            for number, member in enumerate(connector.members):
                if member.scope is not None:
                    yield ("connectors", index, "members", number, "scope"), member.scope


def _unknown_scope_ids(config: HubConfig) -> Iterator[Problem]:
    known = _known_ids(config)
    for loc, scope in _scopes(config):
        named = [] if scope.share_with == "all" else list(enumerate(scope.share_with))
        for index, name in named:
            if name not in known:
                yield Problem((*loc, "share_with", index), _unknown_id_message(name, "share_with", known))
        for index, entry in enumerate(scope.exclude):
            if isinstance(entry, str) and entry not in known:
                yield Problem((*loc, "exclude", index), _unknown_id_message(entry, "exclude", known))


def _unknown_id_message(name: str, field: str, known: frozenset[str]) -> str:
    message = f"unknown community {name!r} in {field}: not a community of this hub nor in hub.remote"
    close = difflib.get_close_matches(name, sorted(known), n=1)
    if close:
        message += f"; did you mean {close[0]!r}?"
    return message + f" (known: {', '.join(sorted(known)) or 'none'})"


# --- TLP and scope -----------------------------------------------------------------------------------


def _senders(config: HubConfig) -> Iterator[_Sender]:
    """Each sender with the values that apply to it: an e-mail member's own values override its mailbox's."""
    for index, connector in enumerate(config.connectors):
        loc: Loc = ("connectors", index)
        if not isinstance(connector, EmailConnector):
            scope_loc = (*loc, "scope") if connector.scope is not None else None
            tlp_loc = (*loc, "tlp") if connector.tlp is not None else None
            yield _Sender(loc, connector.tlp, connector.scope, scope_loc, tlp_loc)
            continue
        # A mailbox's own values apply only through its members: anyone else is quarantined.
        for number, member in enumerate(connector.members):
            yield _member_sender((*loc, "members", number), member, connector)


def _member_sender(loc: Loc, member: MemberRule, connector: EmailConnector) -> _Sender:
    # Problems point at the member, even when a value it inherits is to blame: that is where to fix it.
    tlp = member.tlp if member.tlp is not None else connector.tlp
    scope = member.scope if member.scope is not None else connector.scope
    scope_loc = (*loc, "scope") if member.scope is not None else None
    tlp_loc = (*loc, "tlp") if member.tlp is not None else None
    return _Sender(loc, tlp, scope, scope_loc, tlp_loc)


def _tlp_without_audience(config: HubConfig) -> Iterator[Problem]:
    organizations = frozenset(c.id for c in config.communities if c.kind == "organization")
    for sender in _senders(config):
        # RED goes nowhere by design, CLEAR and GREEN reach everyone `all` covers.
        if sender.tlp is None or sender.tlp not in (Tlp.AMBER, Tlp.AMBER_STRICT):
            continue
        label = sender.tlp.label
        scope = sender.scope if sender.scope is not None else Scope()
        if scope.share_with == "all":
            yield Problem(
                sender.share_with_loc,
                f"TLP:{label} with share_with: all would never deliver anything: {label} goes only to "
                "communities named in share_with (`all` does not count); list them",
            )
        elif sender.tlp is Tlp.AMBER_STRICT and not organizations.intersection(scope.share_with):
            yield Problem(
                sender.share_with_loc,
                f"TLP:AMBER+STRICT goes only to communities of kind organization named in share_with, "
                f"and {_none_of(scope.share_with)} "
                f"(organizations: {', '.join(sorted(organizations)) or 'none'})",
            )


def _none_of(ids: list[str]) -> str:
    return f"none of {', '.join(ids)} is one" if ids else "it names none"


# --- connectors --------------------------------------------------------------------------------------


def _polls(connector: Connector) -> bool:
    if isinstance(connector, FeedConnector):
        return True
    if isinstance(connector, TaxiiConnector):
        return connector.direction in ("pull", "both")
    # A bundle or mail source on a web server is polled like a feed.
    source = getattr(connector, "source", None)
    return isinstance(source, str) and source.startswith(("http://", "https://"))


def _polling_too_often(config: HubConfig) -> Iterator[Problem]:
    for index, connector in enumerate(config.connectors):
        if connector.every is None or not _polls(connector):
            continue
        if parse_duration(connector.every) < MIN_POLL_INTERVAL:
            yield Problem(
                ("connectors", index, "every"),
                f"every {connector.every} is too frequent: the minimum is 1m",
            )


def _mailbox_problems(config: HubConfig) -> Iterator[Problem]:
    for index, connector in enumerate(config.connectors):
        if not isinstance(connector, EmailConnector):
            continue
        if not connector.members:
            yield Problem(
                ("connectors", index),
                f"e-mail connector {connector.id!r} has no members: every mail to it would be "
                "quarantined; add members (match, org)",
            )
        if connector.authenticate != "dmarc":
            continue
        for number, member in enumerate(connector.members):
            if not _fixed_domain(member.match):
                yield Problem(
                    ("connectors", index, "members", number, "match"),
                    f"match {member.match!r} names no domain: with authenticate: dmarc a member is "
                    "recognised by DMARC for its domain, so match one (e.g. *@bank-a.example), "
                    "or set authenticate: none",
                )


def _fixed_domain(match: str) -> bool:
    """True when the pattern's domain is a real domain (`bank-a.example`, `*.bank-a.example`)."""
    domain = match.rpartition("@")[2].removeprefix("*.")
    return bool(domain) and not _GLOB_CHARS.intersection(domain)


def _peers_without_signing_key(config: HubConfig) -> Iterator[Problem]:
    if config.hub.signing_key_env is not None:
        return
    needing = [
        f"community {c.id!r} (peer channel)"
        for c in config.communities
        if any(isinstance(channel, PeerChannel) for channel in c.deliver)
    ]
    needing += [f"connector {c.id!r} (peer)" for c in config.connectors if isinstance(c, PeerConnector)]
    if needing:
        yield Problem(
            ("hub",),
            "signing_key_env is not set, so the hub cannot sign the bundles it exchanges with peer hubs; "
            f"needed by {', '.join(needing)}: set it to a variable holding an Ed25519 private key (PEM)",
        )


# --- secrets -----------------------------------------------------------------------------------------

# What a PEM key of each kind contains (PKCS#8 "PRIVATE KEY", also "OPENSSH PRIVATE KEY"; SPKI "PUBLIC KEY").
_PRIVATE_PEM = "PRIVATE KEY-----"
_PUBLIC_PEM = "-----BEGIN PUBLIC KEY-----"
_PEM_KIND = {_PRIVATE_PEM: "private", _PUBLIC_PEM: "public"}


@dataclass(frozen=True)
class _Secret:
    loc: Loc
    name: str
    holds: str
    pem: str | None = None  # the PEM marker the value must contain, for keys


def _secrets(config: HubConfig) -> Iterator[_Secret]:
    hub = config.hub
    if hub.signing_key_env:
        yield _Secret(
            ("hub", "signing_key_env"),
            hub.signing_key_env,
            "the hub's Ed25519 private key (PEM)",
            _PRIVATE_PEM,
        )
    if hub.seal_key_env:
        yield _Secret(("hub", "seal_key_env"), hub.seal_key_env, "the key that seals the anonymisation mapping")
    for index, community in enumerate(config.communities):
        yield from _channel_secrets(index, community)
    for index, connector in enumerate(config.connectors):
        loc: Loc = ("connectors", index)
        if isinstance(connector, TaxiiConnector) and connector.auth is not None:
            holds = f"the TAXII password of user {connector.auth.username!r}"
            yield _Secret((*loc, "auth", "password_env"), connector.auth.password_env, holds)
        if isinstance(connector, PeerConnector):
            holds = "the peer hub's Ed25519 public key (PEM)"
            yield _Secret((*loc, "public_key_env"), connector.public_key_env, holds, _PUBLIC_PEM)


def _channel_secrets(index: int, community: Community) -> Iterator[_Secret]:
    for number, channel in enumerate(community.deliver):
        loc: Loc = ("communities", index, "deliver", number)
        if isinstance(channel, TaxiiChannel) and channel.taxii.auth is not None:
            auth = channel.taxii.auth
            holds = f"the TAXII password of user {auth.username!r}"
            yield _Secret((*loc, "taxii", "auth", "password_env"), auth.password_env, holds)
        elif isinstance(channel, PullChannel):
            for user_index, user in enumerate(channel.pull.users):
                holds = f"the password of pull user {user.username!r}"
                yield _Secret((*loc, "pull", "users", user_index, "password_env"), user.password_env, holds)
        elif isinstance(channel, PeerChannel):
            holds = "the peer hub's Ed25519 public key (PEM)"
            yield _Secret((*loc, "peer", "public_key_env"), channel.peer.public_key_env, holds, _PUBLIC_PEM)


def _unset_secrets(config: HubConfig, env: Mapping[str, str]) -> Iterator[Problem]:
    reported: set[str] = set()
    for secret in _secrets(config):
        # One report per variable: setting it once fixes every place that names it.
        if secret.name in reported:
            continue
        value = env.get(secret.name, "").strip()
        if not value:
            reported.add(secret.name)
            yield Problem(secret.loc, f"environment variable {secret.name} is not set: it must hold {secret.holds}")
        elif secret.pem is not None and secret.pem not in value:
            reported.add(secret.name)
            yield Problem(
                secret.loc,
                f"environment variable {secret.name} does not hold a PEM {_PEM_KIND[secret.pem]} key: "
                f"it must hold {secret.holds}",
            )
