"""Which Source reads a connector's inputs: one place that knows every connector type."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from connectors.stix.source import StixSource
from gateway.intake import Source
from gateway.ports import StateStore
from schemas.config import (
    EmailConnector,
    FeedConnector,
    HubConfig,
    PeerConnector,
    StixConnector,
    TaxiiConnector,
)

_WithSource = TypeVar("_WithSource", FeedConnector, EmailConnector, StixConnector)
Connector = FeedConnector | EmailConnector | TaxiiConnector | PeerConnector | StixConnector


def source_for(config: HubConfig, connector: Connector, state: StateStore, base: Path) -> Source:
    """The reader of `connector`'s inputs. A relative configured `source` is relative to `base`."""
    # Imported on demand: a run that reads bundle files does not load the mail or feed parsers.
    if isinstance(connector, StixConnector):
        return StixSource(_relative_to(connector, base))
    if isinstance(connector, FeedConnector):
        from connectors.feed.source import FeedSource

        return FeedSource(_relative_to(connector, base), state)
    if isinstance(connector, EmailConnector):
        from connectors.email.source import MailSource

        return MailSource(_relative_to(connector, base), state)
    if isinstance(connector, TaxiiConnector):
        from connectors.taxii.source import TaxiiSource

        return TaxiiSource(connector, state)
    from connectors.peer.source import PeerSource

    return PeerSource(config, connector, state)


def _relative_to(connector: _WithSource, base: Path) -> _WithSource:
    source = connector.source
    if not source or source.startswith(("http://", "https://")) or Path(source).is_absolute():
        return connector
    return connector.model_copy(update={"source": str(base / source)})
