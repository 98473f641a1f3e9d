"""Feedback's way back: the channels of the sender's own system, or a mail to its reporter (see gateway/feedback)."""

from __future__ import annotations

from typing import Any

from connectors.mailout.channel import MailChannel
from functions.channels import channel_for
from functions.wiring import Wiring
from gateway.feedback import Feedback, Outcome
from gateway.pipeline import hub_identity
from gateway.seal import Sealer
from schemas.config import EmailTarget, HubConfig


class ChannelFeedbackSender:
    """Delivers a feedback bundle through a community's configured channels, or mails one reporter."""

    def __init__(self, wiring: Wiring, config: HubConfig) -> None:
        self.wiring = wiring
        self.config = config

    def to_community(self, community_id: str, bundle: dict[str, Any]) -> None:
        community = self.config.community(community_id)
        assert community is not None, community_id  # return paths name configured communities only
        for channel in community.deliver:
            channel_for(community, channel, self.wiring).deliver(community_id, bundle)

    def to_address(self, address: str, bundle: dict[str, Any]) -> None:
        mailbox = next((c for c in self.config.connectors if c.type == "email"), None)
        sender = mailbox.address if mailbox is not None else f"renkei@{self.config.hub.id}.invalid"
        MailChannel(self.config.hub, EmailTarget(to=[address]), self.wiring.client("ses"), sender).deliver(
            "feedback", bundle
        )


def relay(wiring: Wiring, giver: str, objects: list[Any], input_name: str) -> list[Outcome]:
    """Relay a member community's posted sightings to their senders (the TAXII server's feedback collection)."""
    config, _ = wiring.config()
    assert wiring.state is not None and wiring.blobs is not None
    key = wiring.seal_key_for(config)
    feedback = Feedback(
        config, wiring.state, wiring.blobs, ChannelFeedbackSender(wiring, config), hub_identity(config),
        Sealer(key) if key else None,
    )  # fmt: skip
    return feedback.accept(giver, objects, input_name)
