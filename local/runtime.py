"""The embedded default: the same pipeline and adapters as on AWS, with moto's server on 127.0.0.1 for AWS.

This is a composition root, like a Lambda handler: the one place where adapters are wired.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.aws.collections import CollectionStore
from connectors.mailout.approval import ApprovalMailer
from connectors.mailout.channel import MailChannel
from connectors.outdir.channel import OutDirChannel
from connectors.peer.outbound import PeerChannel as PeerSender
from connectors.taxii.push import TaxiiPushChannel
from gateway.errors import RenkeiError
from gateway.pipeline import Pipeline
from gateway.ports import StateStore
from local.embedded import EmbeddedAws
from schemas.config import (
    Community,
    EmailChannel,
    EmailConnector,
    HubConfig,
    PeerChannel,
    PullChannel,
    TaxiiChannel,
)

SEAL_KEY_FILE = "seal.key"


class ChannelNotBuilt(RenkeiError):
    """A delivery channel whose sender is not built yet: the objects stay undelivered and are reported."""


class LiveChannels:
    """Delivers to each destination's configured channels: `pull` stores into Renkei's own collection, `taxii`
    adds to the community's TAXII 2.1 collection, `email` sends with SES, `peer` POSTs a signed bundle."""

    def __init__(self, config: HubConfig, collections: CollectionStore, state: StateStore, ses: Any = None) -> None:
        self._config = config
        self._by_id: dict[str, Community] = {c.id: c for c in config.communities}
        self._collections = collections
        self._state = state
        self._ses = ses
        self._verified = False

    def deliver(self, destination: str, bundle: dict[str, Any]) -> None:
        missing = []
        for channel in self._by_id[destination].deliver:
            if isinstance(channel, PullChannel):
                self._collections.add(destination, bundle["objects"])
            elif isinstance(channel, TaxiiChannel):
                TaxiiPushChannel(channel.taxii, self._state).deliver(destination, bundle)
            elif isinstance(channel, EmailChannel) and self._ses is not None:
                self._mail(channel).deliver(destination, bundle)
            elif isinstance(channel, PeerChannel):
                PeerSender(self._config.hub, channel.peer).deliver(destination, bundle)
            elif isinstance(channel, EmailChannel):
                missing.append(type(channel).__name__.removesuffix("Channel").lower())
        if missing:
            raise ChannelNotBuilt(f"{destination}: channel {', '.join(missing)} is not built yet")

    def _mail(self, channel: EmailChannel) -> MailChannel:
        address = mail_from(self._config)
        if not self._verified:  # SES sends only from verified identities; moto keeps the rule
            self._ses.verify_email_identity(EmailAddress=address)
            self._verified = True
        return MailChannel(self._config.hub, channel.email, self._ses, address)


def mail_from(config: HubConfig) -> str:
    """The hub's own address: its first mailbox's, else one under the hub id."""
    mailbox = next((c for c in config.connectors if isinstance(c, EmailConnector)), None)
    return mailbox.address if mailbox is not None else f"renkei@{config.hub.id}.invalid"


@dataclass
class EmbeddedHub:
    config: HubConfig
    aws: EmbeddedAws
    pipeline: Pipeline
    collections: CollectionStore

    def approval_mailer(self) -> ApprovalMailer:
        """Asks members for approval by mail (SES on moto's server here)."""
        address = mail_from(self.config)
        ses = self.aws.client("ses")
        ses.verify_email_identity(EmailAddress=address)
        return ApprovalMailer(self.config.hub, ses, address)


@contextmanager
def embedded_hub(
    config: HubConfig,
    state_dir: Path | None,
    out_dir: Path | None = None,
    config_version: str = "",
    owns_registry: bool = True,
) -> Iterator[EmbeddedHub]:
    """Start moto's server (with the persisted state of `state_dir`), wire the pipeline, save on exit."""
    with EmbeddedAws(state_dir, owns_registry) as aws:
        collections = CollectionStore(aws.table_name("objects"), aws.dynamodb)
        channel: Any = (
            OutDirChannel(out_dir)
            if out_dir is not None
            else LiveChannels(config, collections, aws.state, aws.client("ses"))
        )
        key = seal_key(config, state_dir)
        pipeline = Pipeline(config, aws.state, aws.blobs, channel, seal_key=key, config_version=config_version)
        yield EmbeddedHub(config, aws, pipeline, collections)


def seal_key(config: HubConfig, state_dir: Path | None) -> bytes:
    """The key that seals anonymisation mappings: from the environment, or kept beside the embedded state."""
    if config.hub.seal_key_env and os.environ.get(config.hub.seal_key_env):
        return os.environ[config.hub.seal_key_env].encode()
    if state_dir is None:
        return secrets.token_bytes(32)
    path = state_dir / SEAL_KEY_FILE
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(secrets.token_bytes(32))
        path.chmod(0o600)
    return path.read_bytes()
