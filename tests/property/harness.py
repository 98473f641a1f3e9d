"""Drives the real pipeline on in-memory ports, and explains a disagreement with the oracle in plain terms."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.memory import InMemoryBlobStore, InMemoryStateStore
from gateway.pipeline import Pipeline, RunResult
from gateway.senders import sender_for
from schemas.config import HubConfig
from tests.property.oracle import DEFINITION_TYPES, Expectation, marking_refs
from tests.property.strategies import NOW

SEAL_KEY = b"k" * 32
CONNECTOR = "drop-folder"


@dataclass
class Capture:
    """The Channel port: keeps every bundle each destination was sent."""

    sent: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def deliver(self, destination: str, bundle: dict[str, Any]) -> None:
        self.sent.setdefault(destination, []).append(json.loads(json.dumps(bundle)))


class Hub:
    """One hub: a validated config, fresh in-memory state, and a capturing channel."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.raw_config = config
        self.config = HubConfig.model_validate(config)
        self.capture = Capture()
        self.pipeline = Pipeline(
            self.config,
            state=InMemoryStateStore(),
            blobs=InMemoryBlobStore(),
            channel=self.capture,
            clock=lambda: NOW,
            seal_key=SEAL_KEY,
        )

    def ingest(self, bundle: Mapping[str, Any] | bytes, connector_id: str = CONNECTOR) -> RunResult:
        raw = bundle if isinstance(bundle, bytes) else json.dumps(bundle).encode()
        return self.pipeline.ingest(raw, sender_for(self.config, connector_id), input_name="x.json")


def objects_of(bundles: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [o for b in bundles for o in b["objects"]]


def content_of(bundles: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The objects of delivered bundles that are not marking- or extension-definitions."""
    return [o for o in objects_of(bundles) if o["type"] not in DEFINITION_TYPES]


def delivered_ids(result: RunResult, destination: str, input_ids: Iterable[str]) -> set[str]:
    return {o["id"] for o in content_of(result.bundles.get(destination, []))} & set(input_ids)


def pipeline_reason(result: RunResult, object_id: str, destination: str) -> str:
    lines = [d for d in result.decisions if d.object == object_id and d.destination == destination]
    return ", ".join(f"{'allowed' if d.allowed else 'withheld'} ({d.reason})" for d in lines) or "(no decision line)"


def explain(
    result: RunResult, expected: Expectation, config: Mapping[str, Any], object_id: str, destination: str
) -> str:
    """Everything needed to judge one disagreement: the object, its markings, the config, both reasons."""
    obj = expected.objects[object_id]
    markings = {ref: expected.definitions.get(ref, "(not in the bundle)") for ref in marking_refs(obj)}
    dest = next(c for c in config["communities"] if c["id"] == destination)
    wanted = object_id in expected.allowed[destination]
    return "\n".join(
        [
            f"{object_id} -> {destination}: oracle says {'ALLOWED' if wanted else 'WITHHELD'} "
            f"({expected.reasons[(object_id, destination)]}), effective TLP {expected.tlp[object_id]}",
            f"  pipeline: {pipeline_reason(result, object_id, destination)}",
            f"  object: {json.dumps(obj)}",
            f"  markings: {json.dumps(markings)}",
            f"  destination: {json.dumps(dest)}",
            f"  connector: {json.dumps(config['connectors'][0])}",
            f"  hub: {json.dumps(config['hub'])}, communities: {[(c['id'], c['kind']) for c in config['communities']]}",
        ]
    )
