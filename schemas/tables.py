"""DynamoDB table definitions: one place, used by the embedded default and by the CDK stack alike."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Index:
    name: str
    partition_key: str
    sort_key: str


@dataclass(frozen=True)
class TableSpec:
    """A table with string keys `partition_key` (+ `sort_key`), optional TTL and global indexes."""

    logical_name: str
    partition_key: str = "pk"
    sort_key: str = "sk"
    ttl_attribute: str | None = None
    indexes: tuple[Index, ...] = field(default_factory=tuple)

    def physical_name(self, prefix: str) -> str:
        return f"{prefix}-{self.logical_name}"


# dedupe, versions, decisions, deliveries, pending approvals, sealed mappings, cursors, quarantine
STATE = TableSpec("state", ttl_attribute="expires_at")
# routing: the validated hub config written by `gateway onboard`, and its change history
REGISTRY = TableSpec("registry")
# Renkei's own TAXII 2.1 collections, one per community with a `pull` channel
OBJECTS = TableSpec(
    "objects",
    indexes=(Index("by-date-added", partition_key="collection", sort_key="date_added_key"),),
)

ALL_TABLES: tuple[TableSpec, ...] = (STATE, REGISTRY, OBJECTS)

# S3 buckets (logical names) and SQS queues
RAW_BUCKET = "raw"
QUARANTINE_BUCKET = "quarantine"
DEFAULT_PREFIX = "renkei"


def stack_name_for(hub_id: str) -> str:
    """The CloudFormation stack of a hub: `Renkei-<hub id>`, with the characters stack names refuse made `-`."""
    return "Renkei-" + re.sub(r"[^A-Za-z0-9-]", "-", hub_id)
