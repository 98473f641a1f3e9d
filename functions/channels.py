"""The sender for each kind of delivery channel a community names (pull, taxii, email, peer).

`pull` stores into Renkei's own TAXII collection (the objects table); `taxii`, `email` and `peer` use their
connector packages' senders. A kind with no builder raises ChannelNotBuilt, a retryable error: the task is
retried and then kept in the dead-letter queue, to be redriven once that sender is deployed. Nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.aws.collections import CollectionStore
from gateway.errors import RetryableError
from gateway.ports import Channel
from schemas.config import Channel as ChannelConfig
from schemas.config import Community, EmailChannel, PeerChannel, PullChannel, TaxiiChannel

ChannelBuilder = Callable[[Community, Any, Any], Channel]  # (community, channel config, wiring) -> Channel


class ChannelNotBuilt(RetryableError):
    """No sender for this kind of channel in this deployment."""


def kind_of(channel: ChannelConfig) -> str:
    """`pull`, `taxii`, `email` or `peer`: the key a community's channel has in the config."""
    return type(channel).__name__.removesuffix("Channel").lower()


class PullDelivery:
    """A `pull` channel: the community's members fetch from Renkei's own TAXII 2.1 collection."""

    def __init__(self, collections: CollectionStore) -> None:
        self._collections = collections

    def deliver(self, destination: str, bundle: dict[str, Any]) -> None:
        self._collections.add(destination, bundle["objects"])


def _pull(community: Community, channel: Any, wiring: Any) -> Channel:
    return PullDelivery(CollectionStore(wiring.settings.objects_table, wiring.dynamodb))


def _taxii(community: Community, channel: Any, wiring: Any) -> Channel:
    from connectors.taxii.push import TaxiiPushChannel

    return TaxiiPushChannel(channel.taxii, wiring.state)


def _email(community: Community, channel: Any, wiring: Any) -> Channel:
    from connectors.mailout.channel import MailChannel

    config, _ = wiring.config()
    mailbox = next((c for c in config.connectors if c.type == "email"), None)
    address = mailbox.address if mailbox is not None else f"renkei@{config.hub.id}.invalid"
    return MailChannel(config.hub, channel.email, wiring.client("ses"), address)


def _peer(community: Community, channel: Any, wiring: Any) -> Channel:
    from connectors.peer.outbound import PeerChannel as PeerSender

    config, _ = wiring.config()
    return PeerSender(config.hub, channel.peer)


BUILDERS: dict[type, ChannelBuilder] = {
    PullChannel: _pull,
    TaxiiChannel: _taxii,
    EmailChannel: _email,
    PeerChannel: _peer,
}


def register(kind: type, builder: ChannelBuilder) -> None:
    """Replace the builder of one channel kind (a connector package, `gateway serve`, a test)."""
    BUILDERS[kind] = builder


def channel_for(community: Community, channel: ChannelConfig, wiring: Any) -> Channel:
    """The sender of one of `community`'s channels. Raises ChannelNotBuilt."""
    builder = BUILDERS.get(type(channel))
    if builder is None:
        raise ChannelNotBuilt(f"{community.id}: no sender for {kind_of(channel)} channels")
    return builder(community, channel, wiring)
