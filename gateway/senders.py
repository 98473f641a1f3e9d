"""Who sent an input: the connector's sender and choices, or an e-mail member's, which override them."""

from __future__ import annotations

from gateway.model import SenderPolicy
from schemas.config import (
    Community,
    Connector,
    HubConfig,
    MemberRule,
    PeerChannel,
    PeerConnector,
    Scope,
    SenderChoices,
    TaxiiChannel,
    TaxiiConnector,
)
from schemas.tlp import Tlp


class UnknownConnector(KeyError):
    """No connector with that id in the config."""


def sender_for(config: HubConfig, connector_id: str, member: MemberRule | None = None) -> SenderPolicy:
    """The policy for inputs of a connector (and, for mail, of the member it was matched to).

    Raises UnknownConnector.
    """
    connector = config.connector(connector_id)
    if connector is None:
        raise UnknownConnector(connector_id)
    org = connector.sender.org if connector.sender else connector.id
    community = connector.sender.community if connector.sender else None
    choices: list[SenderChoices] = [connector]
    private: tuple[str, ...] = ()
    if member is not None:
        org, community = member.org, member.community or community
        choices.insert(0, member)  # the member's own values win
        private = (org,)
    tlp = next((c.tlp for c in choices if c.tlp is not None), None)
    scope = next((c.scope for c in choices if c.scope is not None), None)
    anonymize = next((c.anonymize for c in choices if c.anonymize is not None), None)
    approval = any(c.approval == "required" for c in choices)
    return SenderPolicy(
        connector_id=connector.id,
        connector_type=connector.type,
        org=org,
        community=community,
        tlp=tlp if tlp is not None else Tlp.CLEAR,
        scope=scope if scope is not None else Scope(),
        anonymize=anonymize if anonymize is not None and anonymize.enabled else None,
        approval_required=approval,
        origin_ids=origin_ids(config, connector),
        private_values=private,
    )


def origin_ids(config: HubConfig, connector: Connector) -> frozenset[str]:
    """Destinations that are the system a connector reads from: nothing goes back there (rule 11).

    A TAXII connector's system is its collection (and the community it speaks for); a peer connector's is
    the peer hub. Feeds, mailboxes and bundle folders are not destinations.
    """
    ids: set[str] = set()
    if isinstance(connector, TaxiiConnector | PeerConnector) and connector.sender and connector.sender.community:
        ids.add(connector.sender.community)
    for community in config.communities:
        if _same_system(connector, community):
            ids.add(community.id)
    return frozenset(ids)


def _same_system(connector: Connector, community: Community) -> bool:
    for channel in community.deliver:
        if isinstance(connector, TaxiiConnector) and isinstance(channel, TaxiiChannel):
            same_url = channel.taxii.url.rstrip("/") == connector.url.rstrip("/")
            if same_url and channel.taxii.collection == connector.collection:
                return True
        if isinstance(connector, PeerConnector) and isinstance(channel, PeerChannel):
            if channel.peer.public_key_env == connector.public_key_env:
                return True
    return False
