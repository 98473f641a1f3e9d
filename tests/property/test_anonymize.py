"""Property 6: with `anonymize`, no trace of the sender or of a `redact` value leaves the hub (rule 12)."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.property.harness import CONNECTOR, Hub
from tests.property.strategies import Ids, bundles, hub_configs, timestamps

_IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")


@dataclass
class Canaries:
    """Values that must never appear in anything delivered."""

    org: str
    network: ipaddress.IPv4Network
    domain: str
    name: str
    identity_id: str

    @property
    def redact(self) -> list[str]:
        return [str(self.network), self.domain, self.name]

    def leaks(self, text: str) -> list[str]:
        lower = text.lower()
        found = [v for v in (self.org, self.domain, self.name, self.identity_id) if v.lower() in lower]
        found += [ip for ip in _IPV4.findall(text) if _inside(ip, self.network)]
        return found


def _inside(text: str, network: ipaddress.IPv4Network) -> bool:
    try:
        return ipaddress.IPv4Address(text) in network
    except ValueError:
        return False


@st.composite
def canaries(draw: st.DrawFn, ids: Ids) -> Canaries:
    word = draw(st.sampled_from(("kanaria", "tsubame", "hibari", "uguisu")))
    n = draw(st.integers(10, 99))
    return Canaries(
        org=f"{word.title()} Bank {n}",
        network=ipaddress.IPv4Network(f"10.{draw(st.integers(0, 255))}.0.0/16"),
        domain=f"{word}{n}.example",
        name=f"{word.title()} Treasury Ops {n}",
        identity_id=ids("identity"),
    )


def _vary_case(draw: st.DrawFn, text: str) -> str:
    return draw(st.sampled_from((text, text.upper(), text.lower())))


@st.composite
def planted(draw: st.DrawFn) -> tuple[dict[str, Any], Canaries]:
    """A random bundle, plus the sender's identity and objects that name the canaries everywhere they can."""
    bundle = draw(bundles(max_core=5, max_containers=3))
    ids = Ids(draw(st.integers(0, 2**60)))
    secret = draw(canaries(ids))
    ip = str(secret.network.network_address + draw(st.integers(1, 65534)))
    host = f"{draw(st.sampled_from(('mail', 'vpn', 'intra')))}.{secret.domain}"
    created, modified = draw(timestamps())
    common = {"spec_version": "2.1", "created": created, "modified": modified, "created_by_ref": secret.identity_id}
    identity = {
        "type": "identity",
        "spec_version": "2.1",
        "id": secret.identity_id,
        "created": created,
        "modified": modified,
        "name": secret.org,
        "identity_class": "organization",
    }
    text = (
        f"Reported by {_vary_case(draw, secret.org)}: phishing to {_vary_case(draw, secret.name)} "
        f"from {ip}, relayed via {_vary_case(draw, host)}."
    )
    malware = {
        **common,
        "type": "malware",
        "id": ids("malware"),
        "name": "loader",
        "is_family": False,
        "description": text,
    }
    indicator = {
        **common,
        "type": "indicator",
        "id": ids("indicator"),
        "name": f"beacon to {host}",
        "pattern": f"[ipv4-addr:value = '{ip}'] OR [domain-name:value = '{host}']",
        "pattern_type": "stix",
        "valid_from": created,
        "description": text,
    }
    address = {"type": "ipv4-addr", "spec_version": "2.1", "id": ids("ipv4-addr"), "value": ip}
    report = {
        **common,
        "type": "report",
        "id": ids("report"),
        "name": f"Incident at {secret.name}",
        "published": modified,
        "report_types": ["threat-report"],
        "description": text,
        "object_refs": [malware["id"], indicator["id"], address["id"], secret.identity_id],
    }
    sighting = {
        **common,
        "type": "sighting",
        "id": ids("sighting"),
        "sighting_of_ref": malware["id"],
        "where_sighted_refs": [secret.identity_id],
    }
    extra = [identity, malware, indicator, address, report, sighting]
    for obj in bundle["objects"]:
        if obj["type"] not in ("marking-definition", "extension-definition") and draw(st.booleans()):
            obj["description"] = text  # the random objects talk about the sender too
            if "created" in obj:
                obj["created_by_ref"] = secret.identity_id
    bundle["objects"] += draw(st.permutations(extra))
    return bundle, secret


@given(config=hub_configs(), data=planted(), tlp=st.sampled_from(("CLEAR", "GREEN")))
def test_nothing_delivered_names_the_anonymised_sender(
    config: dict[str, Any], data: tuple[dict[str, Any], Canaries], tlp: str
) -> None:
    # Given a connector that anonymises its sender and redacts a CIDR, a domain and a name
    bundle, secret = data
    connector = config["connectors"][0]
    connector["sender"]["org"] = secret.org
    connector.update(tlp=tlp, scope={"share_with": "all"}, anonymize={"redact": secret.redact})
    hub = Hub(config)

    # When the hub ingests a bundle that names them in text, patterns, SCOs, created_by_ref and references
    result = hub.ingest(bundle, CONNECTOR)

    # Then no delivered bundle contains any of them
    leaks = {
        dest: found
        for dest, sent in result.bundles.items()
        if (found := secret.leaks(json.dumps(sent, ensure_ascii=False)))
    }
    assert not leaks, f"{leaks}\nredact: {secret.redact}, org: {secret.org}, identity: {secret.identity_id}"
