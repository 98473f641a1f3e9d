"""`gateway serve` as an operator runs it: a real process, its folder polled, a change onboarded meanwhile."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

GATEWAY = [sys.executable, "-c", "from local.cli import main; main()"]
ROOT = Path(__file__).resolve().parents[2]

CONFIG = """\
hub: {id: hub-a}
communities:
  - {id: power-isac, kind: isac, deliver: [{pull: {}}]}
  - {id: bank-b, kind: organization, deliver: [{pull: {}}]}
connectors:
  - id: drop
    type: stix
    source: ./drop/
    every: 1s
    sender: {org: CERT, community: power-isac}
    tlp: GREEN
    scope: {share_with: all}
"""
NARROWED = CONFIG.replace("scope: {share_with: all}", "scope: {share_with: all, exclude: [bank-b]}")


def indicator(name: str) -> dict[str, object]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{'0' * 8}-0000-4000-8000-{name.encode().hex()[:12]:0>12}",
        "created": "2026-11-20T00:00:00.000Z",
        "modified": "2026-11-20T00:00:00.000Z",
        "pattern": f"[domain-name:value = '{name}.example']",
        "pattern_type": "stix",
        "valid_from": "2026-11-20T00:00:00Z",
    }


def drop(folder: Path, name: str) -> str:
    obj = indicator(name)
    bundle = {"type": "bundle", "id": f"bundle--{obj['id'].split('--')[1]}", "objects": [obj]}
    (folder / f"{name}.json").write_text(json.dumps(bundle))
    return str(obj["id"])


def gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GATEWAY, *args], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)


class Served:
    """A `gateway serve` process whose stderr lines arrive on a queue."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.process = subprocess.Popen(
            [*GATEWAY, "serve", *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=cwd
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.api = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"serve never printed {text!r}; it printed:\n{''.join(seen)}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=60)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Served, Path, Path]]:
    (tmp_path / "drop").mkdir()
    config = tmp_path / "gateway.yaml"
    config.write_text(CONFIG)
    state = tmp_path / "state"
    assert gateway("onboard", "--config", str(config), "--state", str(state)).returncode == 0
    process = Served(
        "--state", str(state), "--port", "0", cwd=tmp_path
    )  # the onboarded ./drop/ is relative to serve's folder
    try:
        process.wait_for("serving hub-a under registry:1")
        api = process.wait_for("HTTP API")
        process.api = api.rsplit(" ", 1)[1].strip()
        yield process, config, state
    finally:
        if process.process.poll() is None:
            process.process.kill()


def test_serve_polls_on_schedule_and_a_narrowed_scope_takes_effect_without_a_restart(
    served: tuple[Served, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    process, config, state = served
    # Given serve runs, with its HTTP API up, and routes what is dropped into the polled folder
    with urllib.request.urlopen(f"{process.api}/health", timeout=10) as health:
        assert health.status == 200
    first = drop(tmp_path / "drop", "first")
    process.wait_for("drop: 1 objects, 1 delivered")
    # When the operator narrows the sender's scope while it runs
    config.write_text(NARROWED)
    assert gateway("onboard", "--config", str(config), "--state", str(state)).returncode == 0
    time.sleep(6)  # serve re-reads the registry every 5 s
    second = drop(tmp_path / "drop", "second")
    process.wait_for("drop: 2 objects, 1 delivered, 1 duplicate")
    # Then Ctrl-C stops it cleanly with the state saved
    assert process.stop() == 0
    assert (state / "queues" / "deliveries.jsonl").read_bytes() == b""  # every delivery task was handled
    traced = {}
    for object_id in (first, second):
        result = gateway("trace", "--state", str(state), "--json", object_id)
        assert result.returncode == 0, result.stderr
        traced[object_id] = json.loads(result.stdout)["versions"][0]
    assert traced[first]["config_version"] == "registry:1"
    assert {d["destination"]: d["allowed"] for d in traced[first]["destinations"]} == {
        "bank-b": True,
        "power-isac": True,
    }
    assert traced[second]["config_version"] == "registry:2"
    by_destination = {d["destination"]: d for d in traced[second]["destinations"]}
    assert by_destination["bank-b"]["allowed"] is False and by_destination["bank-b"]["reason"].startswith("scope:")
    assert by_destination["power-isac"]["allowed"] is True
