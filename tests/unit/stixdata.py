"""Builders for STIX test objects and hub configs: deterministic ids and times."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from gateway.tlp import TLP1_IDS, TLP2_IDS
from schemas.config import HubConfig
from schemas.tlp import Tlp

T0 = "2026-11-01T00:00:00.000Z"
T1 = "2026-11-02T00:00:00.000Z"
T2 = "2026-11-03T00:00:00.000Z"
_NS = uuid.UUID("0b0c2f4e-7a3d-4d8e-9a51-0d4b1f7e6a10")


def sid(kind: str, name: str) -> str:
    return f"{kind}--{uuid.uuid5(_NS, name)}"


def indicator(name: str, tlp: Tlp | None = Tlp.GREEN, modified: str = T0, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": sid("indicator", name),
        "created": T0,
        "modified": modified,
        "name": name,
        "pattern": "[domain-name:value = 'evil.example']",
        "pattern_type": "stix",
        "valid_from": T0,
    }
    if tlp is not None:
        obj["object_marking_refs"] = [TLP2_IDS[tlp]]
    obj.update(extra)
    return obj


def tlp1(level: Tlp) -> str:
    return TLP1_IDS[level]


def relationship(name: str, source: str, target: str, tlp: Tlp = Tlp.GREEN) -> dict[str, Any]:
    return {
        "type": "relationship",
        "spec_version": "2.1",
        "id": sid("relationship", name),
        "created": T0,
        "modified": T0,
        "relationship_type": "indicates",
        "source_ref": source,
        "target_ref": target,
        "object_marking_refs": [TLP2_IDS[tlp]],
    }


def bundle(*objects: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": "bundle", "id": sid("bundle", repr(objects)[:200]), "objects": list(objects)})


def hub_config(connector: dict[str, Any] | None = None, **overrides: Any) -> HubConfig:
    """Four communities of different kinds and a `stix` connector `drop` (GREEN, share with all)."""
    data: dict[str, Any] = {
        "hub": {"id": "hub-a", "name": "Hub A"},
        "communities": [
            {"id": "finance-isac", "kind": "isac", "deliver": [{"pull": {}}]},
            {"id": "power-isac", "kind": "isac", "deliver": [{"pull": {}}]},
            {"id": "bank-b", "kind": "organization", "deliver": [{"pull": {}}]},
            {"id": "fsa", "kind": "regulator", "deliver": [{"pull": {}}]},
        ],
        "connectors": [
            {
                "id": "drop",
                "type": "stix",
                "sender": {"org": "Analysts", "community": "finance-isac"},
                "tlp": "GREEN",
                "scope": {"share_with": "all"},
                **(connector or {}),
            },
            {"id": "other", "type": "stix", "sender": {"org": "Someone else"}, "tlp": "CLEAR"},
        ],
    }
    data.update(overrides)
    return HubConfig.model_validate(data)
