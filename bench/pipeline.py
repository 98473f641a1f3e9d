"""Throughput and memory of the whole pipeline, against what peers' connectors do and against the JSON floor.

    python -m bench.pipeline            # 100,000 indicators; 720,000 for peak memory
    python -m bench.pipeline --quick    # 10,000 and 72,000: a smoke run in well under a minute

Three figures on the same objects, in one process:

* Renkei: `Pipeline.ingest` on bundles of 1,000 indicators (raw bytes prepared before timing): read,
  check, normalise, dedupe against the in-memory state store, route to 10 destinations, build each
  destination's bundle and serialise it (the channel does `orjson.dumps` and drops the bytes).
* stix2: what peers' connectors do, `stix2.parse(obj, allow_custom=True).serialize()` per object, on a
  sample (it is slow).
* floor: `orjson.loads` + `orjson.dumps` of each bundle, nothing else.

All three are CPU time (`time.process_time`): steadier than wall time on a shared machine.

Peak memory is measured in a child process that generates its inputs lazily, bundle by bundle, and runs
720,000 indicators (the field trial's volume) through the same in-memory path.

The last line is for scripts: `ratio_vs_stix2=<x> ratio_to_floor=<y> peak_mb_720k=<z>` (with --quick the
last key is `peak_mb_72k`: it names the volume measured).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from gateway.gc_tuning import tune_for_batches
from gateway.memory import InMemoryBlobStore, InMemoryStateStore
from gateway.pipeline import Pipeline, RunResult
from gateway.senders import sender_for
from gateway.tlp import OPENCTI_AMBER_STRICT_ID, TLP1_IDS, TLP2_IDS
from schemas.config import HubConfig
from schemas.tlp import Tlp

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BUNDLE_SIZE = 1_000
CONNECTOR = "analyst-drop"
_NS = uuid.UUID("5b1e6c2a-93f4-4c57-8d0e-2a7f0c9e4b11")

# --- the hub ---------------------------------------------------------------------------------------


def hub_config() -> HubConfig:
    """Ten destinations of every kind, with accepts that narrow, and a GREEN `stix` connector with a scope."""
    pull: list[dict[str, Any]] = [{"pull": {}}]
    data: dict[str, Any] = {
        "hub": {"id": "jp-cross-sector-hub", "name": "Cross-sector hub", "remote": ["eu-energy-isac"]},
        "communities": [
            {
                "id": "finance-isac",
                "kind": "isac",
                "tier": "task-force-1",
                "deliver": [{"taxii": {"url": "https://taxii.fin-isac.example/api1/", "collection": "c1"}}],
                "accepts": {"types": ["indicator", "vulnerability", "report", "note"], "min_confidence": 50},
                "tlp_ids": ["2.0", "1.0"],
            },
            {"id": "power-isac", "kind": "isac", "deliver": pull},
            {"id": "ict-isac", "kind": "isac", "deliver": pull, "accepts": {"secret": False}},
            {"id": "telecom-isac", "kind": "isac", "deliver": pull, "accepts": {"min_confidence": 70}},
            {"id": "bank-b", "kind": "organization", "deliver": pull, "tlp_ids": ["2.0", "1.0"]},
            {"id": "bank-c", "kind": "organization", "deliver": pull},
            {"id": "national-cert", "kind": "cert", "deliver": [{"email": {"to": ["soc@cert.example"]}}]},
            {"id": "fsa", "kind": "regulator", "deliver": [{"email": {"to": ["cyber@fsa.example"]}}]},
            {
                "id": "vendor-x",
                "kind": "vendor",
                "deliver": pull,
                "accepts": {"types": ["vulnerability", "malware"], "secret": False},
            },
            {
                "id": "partner-federation",
                "kind": "peer-hub",
                "deliver": [
                    {
                        "peer": {
                            "url": "https://hub.partner.example/peer/inbox",
                            "public_key_env": "PARTNER_HUB_PUBLIC_KEY",
                            "hub_id": "partner-hub",
                        }
                    }
                ],
            },
        ],
        "connectors": [
            {
                "id": CONNECTOR,
                "type": "stix",
                "source": "inbox/",
                "sender": {"org": "Bank A", "community": "finance-isac"},
                "tlp": "GREEN",
                "scope": {
                    "share_with": [
                        "finance-isac",
                        "power-isac",
                        "ict-isac",
                        "telecom-isac",
                        "bank-b",
                        "national-cert",
                        "vendor-x",
                        "eu-energy-isac",
                    ],
                    "exclude": ["bank-c", {"kind": "regulator"}],
                },
            }
        ],
    }
    return HubConfig.model_validate(data)


class SerialisingChannel:
    """Serialises each delivered bundle, as a real channel must, and drops the bytes."""

    def __init__(self) -> None:
        self.bundles = 0
        self.bytes = 0

    def deliver(self, destination: str, bundle: dict[str, Any]) -> None:
        self.bundles += 1
        self.bytes += len(orjson.dumps(bundle))


# --- realistic indicators --------------------------------------------------------------------------

_STATEMENT_ID = f"marking-definition--{uuid.uuid5(_NS, 'statement')}"
STATEMENT_DEFINITION = {
    "type": "marking-definition",
    "spec_version": "2.1",
    "id": _STATEMENT_ID,
    "created": "2025-01-01T00:00:00.000Z",
    "definition_type": "statement",
    "name": "Copyright Bank A",
    "definition": {"statement": "Copyright 2026 Bank A. Redistribution within the sharing agreement only."},
}
PRODUCERS = [f"identity--{uuid.uuid5(_NS, f'producer-{i}')}" for i in range(12)]
# (weight, marking refs): TLP 2.0 ids, TLP 1.0 ids, OpenCTI's AMBER+STRICT, none (the sender's GREEN applies)
MARKINGS: list[tuple[int, list[str]]] = [
    (30, [TLP2_IDS[Tlp.GREEN]]),
    (12, [TLP2_IDS[Tlp.CLEAR]]),
    (10, [TLP2_IDS[Tlp.AMBER]]),
    (3, [TLP2_IDS[Tlp.AMBER_STRICT]]),
    (2, [TLP2_IDS[Tlp.RED]]),
    (14, [TLP1_IDS[Tlp.GREEN]]),
    (8, [TLP1_IDS[Tlp.CLEAR]]),
    (6, [TLP1_IDS[Tlp.AMBER]]),
    (1, [TLP1_IDS[Tlp.RED]]),
    (2, [OPENCTI_AMBER_STRICT_ID]),
    (6, [TLP2_IDS[Tlp.GREEN], _STATEMENT_ID]),
    (6, []),
]
_MARKING_CHOICES = [m for _, m in MARKINGS]
_MARKING_WEIGHTS = [w for w, _ in MARKINGS]
LABELS = ["malicious-activity", "phishing", "c2", "botnet", "ransomware", "scanner", "credential-theft", "apt"]
INDICATOR_TYPES = ["malicious-activity", "anomalous-activity", "attribution", "compromised"]
ATTACK_TACTICS = ["initial-access", "execution", "persistence", "command-and-control", "exfiltration", "impact"]
KILL_CHAIN = ["reconnaissance", "weaponization", "delivery", "exploitation", "installation", "command-and-control"]
TLDS = ["example", "test", "invalid", "example.net", "example.org"]
_BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)
_LATEST = NOW - timedelta(minutes=1)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Feed:
    """Deterministic indicators, with updates (same id, later modified) and duplicates (identical copies).

    Updates and duplicates repeat objects of earlier bundles, as a feed that re-sends its window does.
    """

    def __init__(self, seed: int = 2026, update_rate: float = 0.06, duplicate_rate: float = 0.04) -> None:
        self.rng = random.Random(seed)
        self.update_rate = update_rate
        self.duplicate_rate = duplicate_rate
        self.recent: list[dict[str, Any]] = []  # bounded: memory stays flat on long runs
        self.kinds: Counter[str] = Counter()

    def bundles(self, total: int, size: int = BUNDLE_SIZE) -> Iterator[bytes]:
        made = 0
        while made < total:
            objects = [self._next() for _ in range(min(size, total - made))]
            made += len(objects)
            for obj in objects:
                self._remember(obj)
            bundle_id = f"bundle--{uuid.UUID(int=self.rng.getrandbits(128), version=4)}"
            yield orjson.dumps({"type": "bundle", "id": bundle_id, "objects": [STATEMENT_DEFINITION, *objects]})

    def _remember(self, obj: dict[str, Any]) -> None:
        if len(self.recent) < 5_000:
            self.recent.append(obj)
        else:
            self.recent[self.rng.randrange(len(self.recent))] = obj

    def _next(self) -> dict[str, Any]:
        rng = self.rng
        roll = rng.random()
        if self.recent and roll < self.duplicate_rate:
            self.kinds["duplicate"] += 1
            return rng.choice(self.recent)
        if self.recent and roll < self.duplicate_rate + self.update_rate:
            updated = self._update(rng.choice(self.recent))
            if updated is not None:
                self.kinds["update"] += 1
                return updated
        self.kinds["new"] += 1
        return self._new()

    def _update(self, old: dict[str, Any]) -> dict[str, Any] | None:
        modified = datetime.fromisoformat(old["modified"].replace("Z", "+00:00"))
        later = modified + timedelta(seconds=self.rng.randrange(3_600, 7 * 86_400))
        if later > _LATEST:
            return None
        new = dict(old)
        new["modified"] = _stamp(later)
        new["confidence"] = min(100, max(0, old.get("confidence", 50) + self.rng.choice((-20, -10, 10, 15))))
        if self.rng.random() < 0.3:
            new["labels"] = [*old.get("labels", []), "revoked-infrastructure"][-3:]
        return new

    def _new(self) -> dict[str, Any]:
        rng = self.rng
        created = _BASE_TIME + timedelta(seconds=rng.randrange(0, 660 * 86_400))
        modified = created + timedelta(seconds=rng.choice((0, 0, rng.randrange(60, 3 * 86_400))))
        name, pattern = self._pattern()
        obj: dict[str, Any] = {
            "type": "indicator",
            "spec_version": "2.1",
            "id": f"indicator--{uuid.UUID(int=rng.getrandbits(128), version=4)}",
            "created_by_ref": rng.choice(PRODUCERS),
            "created": _stamp(created),
            "modified": _stamp(modified),
            "name": name,
            "indicator_types": [rng.choice(INDICATOR_TYPES)],
            "pattern": pattern,
            "pattern_type": "stix",
            "pattern_version": "2.1",
            "valid_from": _stamp(created),
            "confidence": rng.choice((15, 30, 50, 60, 70, 75, 85, 90, 100)),
            "labels": rng.sample(LABELS, rng.randint(1, 3)),
            "kill_chain_phases": [
                {"kill_chain_name": "mitre-attack", "phase_name": rng.choice(ATTACK_TACTICS)},
                {"kill_chain_name": "lockheed-martin-cyber-kill-chain", "phase_name": rng.choice(KILL_CHAIN)},
            ][: rng.randint(1, 2)],
            "external_references": [
                {
                    "source_name": "bank-a-soc",
                    "external_id": f"SOC-{rng.randrange(10_000, 99_999)}",
                    "url": f"https://soc.bank-a.example/cases/{rng.randrange(10**6)}",
                }
            ],
        }
        if rng.random() < 0.5:
            obj["valid_until"] = _stamp(created + timedelta(days=rng.choice((30, 90, 365))))
        if rng.random() < 0.3:
            obj["description"] = f"Seen in {rng.choice(LABELS)} campaign against the sector; blocked at the proxy."
        markings = rng.choices(_MARKING_CHOICES, _MARKING_WEIGHTS)[0]
        if markings:
            obj["object_marking_refs"] = list(markings)
        if rng.random() < 0.02:
            obj["labels"] = [*obj["labels"], "tlp:amber"]  # MISP-style TLP tag: only ever stricter
        return obj

    def _pattern(self) -> tuple[str, str]:
        rng = self.rng
        kind = rng.random()
        if kind < 0.3:
            ip = f"{rng.choice((198, 203, 192))}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            return f"C2 server {ip}", f"[ipv4-addr:value = '{ip}']"
        host = f"{rng.choice(('login', 'secure', 'cdn', 'update', 'mail'))}-{rng.randrange(10**6):06d}"
        domain = f"{host}.{rng.choice(TLDS)}"
        if kind < 0.55:
            return f"Phishing domain {domain}", f"[domain-name:value = '{domain}']"
        if kind < 0.75:
            url = f"https://{domain}/{rng.choice(('wp-admin', 'invoice', 'auth', 'dl'))}/{rng.getrandbits(32):08x}"
            return f"Malicious URL on {domain}", f"[url:value = '{url}']"
        sha256 = f"{rng.getrandbits(256):064x}"
        if kind < 0.9:
            return f"Payload {sha256[:12]}", f"[file:hashes.'SHA-256' = '{sha256}']"
        md5 = f"{rng.getrandbits(128):032x}"
        return f"Dropper {md5[:12]}", f"[file:hashes.MD5 = '{md5}' OR file:hashes.'SHA-256' = '{sha256}']"


# --- the three measurements ------------------------------------------------------------------------


def new_pipeline(config: HubConfig) -> tuple[Pipeline, SerialisingChannel]:
    channel = SerialisingChannel()
    pipeline = Pipeline(
        config, InMemoryStateStore(), InMemoryBlobStore(), channel, clock=lambda: NOW, seal_key=b"k" * 32
    )
    return pipeline, channel


def run_renkei(bundles: list[bytes]) -> tuple[float, RunResult, SerialisingChannel]:
    config = hub_config()
    pipeline, channel = new_pipeline(config)
    sender = sender_for(config, CONNECTOR)
    total = RunResult()
    start = time.process_time()
    for n, raw in enumerate(bundles):
        result = pipeline.ingest(raw, sender, f"bundle-{n:05d}.json")
        total.counts.update(result.counts)
        total.deliveries.update(result.deliveries)
    return time.process_time() - start, total, channel


def run_stix2(bundles: list[bytes], sample: int) -> tuple[float, int]:
    import stix2  # slow to import; only this baseline needs it

    for obj in orjson.loads(bundles[0])["objects"][1:21]:  # warm up: stix2 loads its pattern grammar lazily
        stix2.parse(obj, allow_custom=True).serialize()
    done = 0
    start = time.process_time()
    for raw in bundles:
        for obj in orjson.loads(raw)["objects"]:
            if obj["type"] != "indicator":
                continue
            stix2.parse(obj, allow_custom=True).serialize()
            done += 1
            if done == sample:
                return time.process_time() - start, done
    return time.process_time() - start, done


def run_floor(bundles: list[bytes]) -> float:
    start = time.process_time()
    for raw in bundles:
        orjson.dumps(orjson.loads(raw))
    return time.process_time() - start


def memory_child(total: int) -> None:
    """Run in a child process: `total` indicators generated lazily, through the in-memory path."""
    config = hub_config()
    pipeline, _ = new_pipeline(config)
    sender = sender_for(config, CONNECTOR)
    counts: Counter[str] = Counter()
    start = time.process_time()
    for n, raw in enumerate(Feed().bundles(total)):
        counts.update(pipeline.ingest(raw, sender, f"bundle-{n:05d}.json").counts)
    elapsed = time.process_time() - start
    own_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": elapsed, "counts": counts, "maxrss_mb": own_mb}), flush=True)
    os._exit(0)  # freeing millions of objects one by one only costs time: the measurement is done


def run_memory(total: int) -> tuple[float, dict[str, Any]]:
    """Peak RSS (MB) of a child process that runs `total` indicators; the parent's memory does not count."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.pipeline", "--memory-child", str(total)],
        check=True,
        capture_output=True,
        text=True,
    )
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB
    return peak_mb, json.loads(proc.stdout.strip().splitlines()[-1])


# --- main ------------------------------------------------------------------------------------------


def _rate(label: str, rate: float, detail: str) -> None:
    print(f"{label + ':':<7} {rate:>9,.0f} objects/s  ({detail}; CPU time)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 indicators, 72,000 for memory")
    parser.add_argument("--objects", type=int, help="indicators for throughput (default 100,000)")
    parser.add_argument("--memory-objects", type=int, help="indicators for peak memory (default 720,000)")
    parser.add_argument("--stix2-sample", type=int, help="objects for the stix2 baseline (default 5,000)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory child")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    tune_for_batches()  # as the CLI and the Lambda handlers do
    if args.memory_child is not None:
        memory_child(args.memory_child)
        return
    objects = args.objects or (10_000 if args.quick else 100_000)
    memory_objects = args.memory_objects or (72_000 if args.quick else 720_000)
    sample = min(objects, args.stix2_sample or (1_000 if args.quick else 5_000))

    feed = Feed()
    bundles = list(feed.bundles(objects))
    size_mb = sum(map(len, bundles)) / 1e6
    print(f"input: {objects:,} indicators in {len(bundles)} bundles of {BUNDLE_SIZE:,} ({size_mb:.1f} MB)")
    print(f"       {feed.kinds['new']:,} new, {feed.kinds['update']:,} updates, {feed.kinds['duplicate']:,} duplicates")

    seconds, result, channel = run_renkei(bundles)
    renkei = objects / seconds
    summary = result.summary()
    _rate("renkei", renkei, f"{seconds:.2f} s; read, check, normalise, dedupe, route to 10, serialise")
    print("        " + ", ".join(f"{k} {v:,}" for k, v in summary.items() if k != "deliveries"))
    print("        deliveries " + ", ".join(f"{k} {v:,}" for k, v in summary["deliveries"].items()))
    print(f"        {channel.bundles:,} bundles out, {channel.bytes / 1e6:.1f} MB serialised")

    stix_seconds, done = run_stix2(bundles, sample)
    stix = done / stix_seconds
    _rate("stix2", stix, f"{done:,} objects in {stix_seconds:.2f} s; stix2.parse + serialize each")

    floor_seconds = run_floor(bundles)
    floor = objects / floor_seconds
    _rate("floor", floor, f"{floor_seconds:.2f} s; orjson.loads + orjson.dumps per bundle")

    peak = float("nan")
    if not args.no_memory:
        peak, child = run_memory(memory_objects)
        rate = memory_objects / child["seconds"]
        print(f"memory: {peak:,.0f} MB peak RSS for {memory_objects:,} indicators in a child process")
        print(f"        ({rate:,.0f} objects/s there, generating its inputs as it goes)")

    ratio_vs_stix2, ratio_to_floor = renkei / stix, floor / renkei
    print(f"targets: >= 20x stix2 ({ratio_vs_stix2:.1f}x), within 4x of the floor ({ratio_to_floor:.2f}x), < 1536 MB")
    # the key names the volume measured: peak_mb_720k by default, peak_mb_72k with --quick
    peak_key = f"peak_mb_{memory_objects // 1000}k" if memory_objects % 1000 == 0 else f"peak_mb_{memory_objects}"
    print(f"ratio_vs_stix2={ratio_vs_stix2:.2f} ratio_to_floor={ratio_to_floor:.2f} {peak_key}={peak:.0f}")


if __name__ == "__main__":
    main()
