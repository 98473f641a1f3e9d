"""The hub config: hub, communities (destinations and their channels), connectors (sources and senders).

The YAML a hub operator writes (see examples/gateway.yaml) validates into `HubConfig`. Structural
rules live on the models; rules that need the whole file (ids that must exist, duplicates) live in
`schemas.checks`, so `gateway check` can report every problem in one pass with its line.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from schemas.tlp import Tlp

CommunityKind = Literal["isac", "ceptoar", "cert", "regulator", "vendor", "organization", "peer-hub"]
COMMUNITY_KINDS: tuple[str, ...] = CommunityKind.__args__  # type: ignore[attr-defined]

_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
Identifier = Annotated[str, Field(pattern=_ID, description="letters, digits, '.', '_' or '-'")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="an environment variable name")]

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`30s`, `15m`, `1h`, `7d` -> timedelta. Raises ValueError."""
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 1h, 7d)")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


_TLP_LABELS = ", ".join(level.label for level in Tlp)


def _tlp(value: Any) -> Any:
    # Tlp is an IntEnum: without this, `tlp: 1` or `tlp: true` would quietly validate as GREEN.
    if isinstance(value, Tlp):
        return value
    if isinstance(value, str):
        try:
            return Tlp.parse(value)
        except ValueError:
            pass
    raise ValueError(f"not a TLP level: {value!r} ({_TLP_LABELS})")


TlpLevel = Annotated[
    Tlp,
    BeforeValidator(_tlp),
    PlainSerializer(lambda level: level.label, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "enum": ["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED", "WHITE"],
            "description": ("the sender's TLP; an object's own marking may only make it stricter (WHITE = CLEAR)"),
        }
    ),
]


# --- scope -------------------------------------------------------------------------------------------


class KindExclusion(_Model):
    """Exclude every destination of a kind, e.g. `{kind: regulator}`."""

    kind: CommunityKind


Exclusion = Identifier | KindExclusion


class Scope(_Model):
    """Who the sender allows: `share_with` (`all` or ids), minus `exclude` (ids or kinds). Exclude wins."""

    share_with: Literal["all"] | list[Identifier] = "all"
    exclude: list[Exclusion] = Field(default_factory=list)

    @property
    def shares_with_all(self) -> bool:
        return self.share_with == "all"

    @property
    def excluded_ids(self) -> frozenset[str]:
        return frozenset(e for e in self.exclude if isinstance(e, str))

    @property
    def excluded_kinds(self) -> frozenset[str]:
        return frozenset(e.kind for e in self.exclude if isinstance(e, KindExclusion))


# --- sender choices, on a connector or an e-mail member ----------------------------------------------


class Anonymize(_Model):
    """Replace the sender by the hub, and never let the `redact` values (CIDRs, domains, names) leave."""

    enabled: bool = True
    redact: list[str] = Field(default_factory=list)


def _anonymize(value: Any) -> Any:
    if isinstance(value, bool):
        return {"enabled": value}
    return value


class Sender(_Model):
    """Who is sending: the organisation, and the community it belongs to."""

    org: str = Field(min_length=1)
    community: Identifier | None = None


class SenderChoices(_Model):
    """What the sender allows; accepted on any connector and on an e-mail member."""

    tlp: TlpLevel | None = None
    scope: Scope | None = None
    anonymize: Anonymize | None = None
    approval: Literal["required", "none"] = "none"
    _parse_anonymize = field_validator("anonymize", mode="before")(_anonymize)


# --- communities and their channels ------------------------------------------------------------------


class BasicAuth(_Model):
    username: str = Field(min_length=1)
    password_env: EnvName


class TaxiiTarget(_Model):
    url: str = Field(pattern=r"^https?://")
    collection: str = Field(min_length=1)
    auth: BasicAuth | None = None


class TaxiiChannel(_Model):
    """Push to the community's TAXII 2.1 collection."""

    taxii: TaxiiTarget


class EmailTarget(_Model):
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)


class EmailChannel(_Model):
    """Mail with the STIX bundle attached and a defanged summary in the body."""

    email: EmailTarget


class PullUser(_Model):
    username: str = Field(min_length=1)
    password_env: EnvName


class PullTarget(_Model):
    users: list[PullUser] = Field(default_factory=list)


class PullChannel(_Model):
    """Members pull from Renkei's own TAXII 2.1 collection for this community."""

    pull: PullTarget


class PeerTarget(_Model):
    url: str = Field(pattern=r"^https?://")
    public_key_env: EnvName
    hub_id: Identifier | None = Field(
        default=None,
        description="the peer's own hub id, as it appears in hop lists (default: the community id)",
    )


class PeerChannel(_Model):
    """A signed bundle to a peer hub's inbox."""

    peer: PeerTarget


Channel = TaxiiChannel | EmailChannel | PullChannel | PeerChannel


class Accepts(_Model):
    """A community's own preferences. They can only narrow what the policy allows."""

    types: list[str] | None = None
    min_confidence: int | None = Field(default=None, ge=0, le=100)
    min_cvss: float | None = Field(default=None, ge=0.0, le=10.0)
    secret: bool = True


TlpId = Literal["2.0", "1.0"]


class Community(_Model):
    """A destination: every object is routed to it or withheld from it, with a reason."""

    id: Identifier
    name: str | None = None
    kind: CommunityKind
    tier: Literal["task-force-1", "task-force-2", "general"] = "general"
    deliver: list[Channel] = Field(min_length=1)
    accepts: Accepts = Field(default_factory=Accepts)
    tlp_ids: list[TlpId] = Field(default_factory=lambda: list[TlpId](["2.0"]))

    @field_validator("tlp_ids")
    @classmethod
    def _must_write_tlp2(cls, value: list[str]) -> list[str]:
        if "2.0" not in value:
            raise ValueError('must include "2.0": every object leaves with its TLP 2.0 marking')
        return value

    @property
    def peer_hub_ids(self) -> frozenset[str]:
        """The hub ids this destination stands for in hop lists (peer hubs only)."""
        ids = {c.peer.hub_id or self.id for c in self.deliver if isinstance(c, PeerChannel)}
        return frozenset(ids | {self.id}) if self.kind == "peer-hub" else frozenset()


# --- connectors --------------------------------------------------------------------------------------


class _Connector(SenderChoices):
    id: Identifier
    sender: Sender | None = None
    every: str | None = Field(default=None, description="polling interval, e.g. 15m")

    @field_validator("every")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


class FeedConnector(_Connector):
    """CISTA-style advisory feed: RSS 1.0/RDF, RSS 2.0, Atom, JSON."""

    type: Literal["feed"]
    source: str = Field(min_length=1)
    allow_internal_entities: bool = Field(
        default=False, description="accept a feed that declares harmless internal XML entities"
    )


class MemberRule(SenderChoices):
    """Who may report by mail: a sender address pattern and what that member allows."""

    match: str = Field(min_length=3, description="a sender address or glob, e.g. *@bank-a.example")
    org: str = Field(min_length=1)
    community: Identifier | None = None

    @field_validator("match")
    @classmethod
    def _has_domain(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError("must be an address or a pattern like *@domain")
        return value.lower()


class EmailConnector(_Connector):
    """J-CSIP-style mailbox: members report suspicious mail; partners send advisories."""

    type: Literal["email"]
    address: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    authenticate: Literal["dmarc", "none"] = "dmarc"
    members: list[MemberRule] = Field(default_factory=list)
    source: str | None = Field(default=None, description="a maildir or folder of .eml files to poll")


class TaxiiConnector(_Connector):
    """An ISAC's TAXII 2.1 collection."""

    type: Literal["taxii"]
    url: str = Field(pattern=r"^https?://")
    collection: str = Field(min_length=1)
    direction: Literal["pull", "push", "both"] = "pull"
    auth: BasicAuth | None = None


class PeerConnector(_Connector):
    """Signed bundles from a peer hub's outbound channel."""

    type: Literal["peer"]
    public_key_env: EnvName


class StixConnector(_Connector):
    """STIX 2.1 bundles: a file, a folder of them, or a URL."""

    type: Literal["stix"]
    source: str | None = None


Connector = Annotated[
    FeedConnector | EmailConnector | TaxiiConnector | PeerConnector | StixConnector,
    Field(discriminator="type"),
]
CONNECTOR_TYPES = ("feed", "email", "taxii", "peer", "stix")


class Hub(_Model):
    id: Identifier
    name: str | None = None
    signing_key_env: EnvName | None = None
    seal_key_env: EnvName | None = Field(
        default=None,
        description="key that seals the anonymisation mapping (embedded default: one kept in --state)",
    )
    remote: list[Identifier] = Field(
        default_factory=list,
        description=("community and organisation ids served by other hubs of the federation, that scopes may name"),
    )
    approval_expires_after: str = Field(default="7d", description="pending objects expire after this, with notice")

    @field_validator("approval_expires_after")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class HubConfig(_Model):
    """The whole config file."""

    hub: Hub
    communities: list[Community] = Field(default_factory=list)
    connectors: list[Connector] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _not_empty(cls, data: Any) -> Any:
        if data is None:
            return {}
        return data

    def community(self, community_id: str) -> Community | None:
        return next((c for c in self.communities if c.id == community_id), None)

    def connector(
        self, connector_id: str
    ) -> FeedConnector | EmailConnector | TaxiiConnector | PeerConnector | StixConnector | None:
        return next((c for c in self.connectors if c.id == connector_id), None)

    @property
    def local_ids(self) -> frozenset[str]:
        """Communities this hub serves itself (every destination but peer hubs)."""
        return frozenset(c.id for c in self.communities if c.kind != "peer-hub")
