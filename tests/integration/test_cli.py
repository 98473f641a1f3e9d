"""The `gateway` command as a user runs it, on the embedded default (moto's server on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from local.cli import app
from tests.unit.stixdata import T1, bundle, indicator, sid

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
runner = CliRunner()

CONFIG = """\
hub: {id: hub-a, name: Hub A}
communities:
  - {id: finance-isac, kind: isac, deliver: [{pull: {}}]}
  - {id: power-isac, kind: isac, deliver: [{pull: {}}], accepts: {min_confidence: 50}}
  - {id: bank-b, kind: organization, deliver: [{pull: {}}]}
  - {id: fsa, kind: regulator, deliver: [{email: {to: [cyber@fsa.example]}}]}
connectors:
  - id: drop
    type: stix
    sender: {org: Analysts, community: finance-isac}
    tlp: GREEN
    scope: {share_with: all, exclude: [{kind: regulator}]}
  - id: member
    type: stix
    sender: {org: Bank A, community: finance-isac}
    tlp: GREEN
    approval: required
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG)
    return path


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def gateway(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_ingest_out_writes_the_contract_layout_and_json_summary(tmp_path: Path, config: Path) -> None:
    # Given one good bundle and one that is not JSON
    good = write(tmp_path / "good.json", bundle(indicator("a", confidence=80), indicator("low", confidence=10)))
    bad = write(tmp_path / "bad.json", b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "out"
    # When
    result = gateway("ingest", "--config", str(config), "--out", str(out), "--json", f"drop={good}", f"drop={bad}")
    # Then stdout is exactly the summary, and the files follow the contract
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary == {
        "objects": 3, "delivered": 2, "withheld": 0, "pending": 0, "quarantined": 1, "duplicate": 0,
        "deliveries": {"bank-b": 2, "finance-isac": 2, "power-isac": 1},
    }  # fmt: skip
    lines = [json.loads(line) for line in (out / "decisions.jsonl").read_text().splitlines()]
    assert len(lines) == 2 * 4
    assert {"object", "version", "destination", "allowed", "reason"} == set(lines[0])
    fsa = [line for line in lines if line["destination"] == "fsa"]
    assert {line["reason"] for line in fsa} == {"scope:excluded-kind:regulator"}
    received = json.loads(next((out / "power-isac").glob("*.json")).read_text())
    assert received["type"] == "bundle"
    assert [o["id"] for o in received["objects"] if o["type"] == "indicator"] == [sid("indicator", "a")]
    assert not (out / "fsa").exists()
    quarantined = out / "quarantine" / "1"
    assert (quarantined / "bad.json").read_bytes() == bad.read_bytes()
    assert json.loads((quarantined / "reason.json").read_text())["reason"] == "json:not-utf8"


def test_state_dir_makes_tomorrows_follow_up_and_duplicates_recognised(tmp_path: Path, config: Path) -> None:
    state = tmp_path / "state"
    v1 = write(tmp_path / "v1.json", bundle(indicator("campaign", description="first")))
    v2 = write(tmp_path / "v2.json", bundle(indicator("campaign", modified=T1, description="second")))
    assert gateway("ingest", "--config", str(config), "--state", str(state), f"drop={v1}").exit_code == 0
    # When the same input comes again in a new run, then v2 the day after
    again = gateway("ingest", "--config", str(config), "--state", str(state), "--json", f"drop={v1}")
    out = tmp_path / "out"
    follow = gateway(
        "ingest", "--config", str(config), "--state", str(state), "--out", str(out), "--json", f"drop={v2}"
    )
    # Then the repeat is a duplicate and v2 arrives with a change note
    assert json.loads(again.stdout)["duplicate"] == 1
    assert json.loads(follow.stdout)["delivered"] == 1
    objects = json.loads(next((out / "bank-b").glob("*.json")).read_text())["objects"]
    note = next(o for o in objects if o["type"] == "note")
    assert "first -> second" in note["content"]


def test_trace_shows_every_version_and_destination_and_exits_1_for_unknown(tmp_path: Path, config: Path) -> None:
    state = tmp_path / "state"
    v1 = write(tmp_path / "v1.json", bundle(indicator("x")))
    gateway("ingest", "--config", str(config), "--state", str(state), f"drop={v1}")
    result = gateway("trace", "--config", str(config), "--state", str(state), "--json", sid("indicator", "x"))
    assert result.exit_code == 0, result.output
    traced = json.loads(result.stdout)
    destinations = {d["destination"]: d for d in traced["versions"][0]["destinations"]}
    assert destinations["fsa"] == {"destination": "fsa", "allowed": False, "reason": "scope:excluded-kind:regulator"}
    assert destinations["bank-b"]["allowed"] is True
    # The decisions say which config they were made under: this run's file, by its digest
    assert traced["versions"][0]["config_version"].startswith(f"file:{config.name}@sha256:")
    unknown = gateway("trace", "--config", str(config), "--state", str(state), sid("indicator", "nope"))
    assert unknown.exit_code == 1


def test_pending_then_approve_releases_into_routing(tmp_path: Path, config: Path) -> None:
    state = tmp_path / "state"
    report = write(tmp_path / "r.json", bundle(indicator("reported")))
    held = gateway("ingest", "--config", str(config), "--state", str(state), "--json", f"member={report}")
    assert json.loads(held.stdout)["pending"] == 1
    listed = json.loads(gateway("pending", "--config", str(config), "--state", str(state), "--json").stdout)
    assert len(listed) == 1 and listed[0]["objects"] == 1
    approved = gateway("approve", "--config", str(config), "--state", str(state), "--json", listed[0]["pending_id"])
    assert approved.exit_code == 0, approved.output
    assert json.loads(approved.stdout)["delivered"] == 1
    assert json.loads(gateway("pending", "--config", str(config), "--state", str(state), "--json").stdout) == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"A" * (26 * 1024 * 1024), "input:too-large"),
        (b'{"type": "bundle", "objects": [], "objects": []}', "json:duplicate-key"),
        (b'[{"type": "indicator"}]', "stix:not-a-bundle"),
        (b'{"type": "bundle", "objects": [' + b"[" * 5000 + b"]" * 5000 + b"]}", "json:too-deep"),
        (b'{"type": "bundle", "objects": [{"x": NaN}]}', "json:non-finite-number"),
    ],
    ids=["50MB", "duplicate-keys", "not-a-bundle", "deep", "nan"],
)
def test_bad_input_is_quarantined_with_its_bytes_and_the_run_goes_on(
    tmp_path: Path, config: Path, content: bytes, reason: str
) -> None:
    bad = write(tmp_path / "bad.json", content)
    good = write(tmp_path / "good.json", bundle(indicator("fine")))
    out = tmp_path / "out"
    result = gateway("ingest", "--config", str(config), "--out", str(out), "--json", f"drop={bad}", f"drop={good}")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["quarantined"] == 1 and summary["delivered"] == 1
    assert json.loads((out / "quarantine" / "1" / "reason.json").read_text())["reason"] == reason
    kept = (out / "quarantine" / "1" / "bad.json").read_bytes()
    assert kept == content[: len(kept)] and len(kept) >= min(len(content), 25 * 1024 * 1024)


def test_usage_errors_exit_2(tmp_path: Path, config: Path) -> None:
    assert gateway("ingest", "--config", str(config), "nope=x.json").exit_code == 2
    assert gateway("ingest", "--config", str(config), f"drop={tmp_path / 'missing.json'}").exit_code == 2
    broken = tmp_path / "broken.yaml"
    broken.write_text("hub: {id: h}\ncommunities:\n  - {id: x, kind: martian, deliver: [{pull: {}}]}\n")
    checked = gateway("check", "--config", str(broken))
    assert checked.exit_code == 2
    assert f"{broken}:3:" in checked.output


def test_check_and_schema(config: Path) -> None:
    assert gateway("check", "--config", str(config)).exit_code == 0
    schema = json.loads(gateway("schema").stdout)
    assert "communities" in schema["properties"]


def test_the_installed_command_runs_the_demo_as_a_user_would() -> None:
    # A real process, as `make demo` runs it: nothing on stdout but the one JSON object.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    gateway_bin = Path(sys.executable).parent / "gateway"
    done = subprocess.run([str(gateway_bin), "demo", "--json"], capture_output=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    steps = {(s["connector"], n): s for n, s in enumerate(json.loads(done.stdout)["steps"])}
    by_connector = [c for c, _ in steps]
    assert by_connector == [
        "fin-isac-taxii", "jvn-feed", "cisa-kev", "jcsip-mailbox", "analyst-drop", "isac-drop", "jvn-feed",
        "jcsip-mailbox",
    ]  # fmt: skip
    mail_held, mail_released = steps[("jcsip-mailbox", 3)], steps[("jcsip-mailbox", 7)]
    assert mail_held["summary"]["pending"] > 0 and mail_held["summary"]["delivered"] == 0
    assert mail_released["summary"]["delivered"] > 0  # approved: released under the member's policy
    assert steps[("analyst-drop", 4)]["quarantined"] == [
        {"input": "02-broken-duplicate-keys.json", "reason": "json:duplicate-key"}
    ]
    update = steps[("jvn-feed", 6)]["followups"]
    assert any("x_cvss_base_score: 7.5 -> 9.1" in f["summary"] for f in update), "the CVSS change is spelled out"
    for step in steps.values():
        s = step["summary"]
        assert s["objects"] == s["delivered"] + s["withheld"] + s["pending"] + s["quarantined"] + s["duplicate"]


def test_ingest_reads_a_bundle_from_a_url(tmp_path: Path, config: Path) -> None:
    import functools
    import http.server
    import threading

    # Given a bundle served over HTTP on 127.0.0.1
    (tmp_path / "feed.json").write_bytes(bundle(indicator("from-url")))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/feed.json"
        # When ingested by URL
        result = gateway("ingest", "--config", str(config), "--json", f"drop={url}")
    finally:
        server.shutdown()
    # Then it went through the pipeline
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["delivered"] == 1
