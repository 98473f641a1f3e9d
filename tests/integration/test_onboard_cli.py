"""`gateway onboard` as a user runs it: on the embedded state (moto's server on 127.0.0.1), and with --aws."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from moto.server import ThreadedMotoServer
from rich.console import Console

from gateway.model import PendingItem
from local.embedded import EmbeddedAws
from local.onboard import load_registry, run_onboard

pytestmark = pytest.mark.integration

CONFIG = """\
hub: {id: hub-a, name: Hub A}
communities:
  - {id: finance-isac, kind: isac, deliver: [{pull: {}}]}
  - {id: power-isac, kind: isac, deliver: [{pull: {}}]}
  - {id: fsa, kind: regulator, deliver: [{email: {to: [cyber@fsa.example]}}]}
connectors:
  - id: advisories
    type: feed
    source: https://cert.example/rss
    every: 15m
    sender: {org: CERT, community: finance-isac}
    tlp: GREEN
    scope: {share_with: [power-isac, fsa]}
"""
NARROWED = CONFIG.replace("share_with: [power-isac, fsa]", "share_with: [power-isac], exclude: [{kind: regulator}]")
WITHOUT_FSA = NARROWED.replace("  - {id: fsa, kind: regulator, deliver: [{email: {to: [cyber@fsa.example]}}]}\n", "")


class Run:
    def __init__(self, code: int, output: str) -> None:
        self.code = code
        self.output = output


def onboard(config: Path | None, state: Path | None, **flags: Any) -> Run:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    options = {"aws": False, "dry_run": False, "force": False, "history": False} | flags
    session = options.pop("session", None)
    code = run_onboard(config, state, console=console, session=session, **options)
    return Run(code, out.getvalue())


def write(tmp_path: Path, text: str, name: str = "gateway.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(autouse=True)
def user(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("USER", "alice")
    return "alice"


# --- embedded ----------------------------------------------------------------------------------------


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    # Given nothing onboarded, no state folder yet
    state = tmp_path / "state"

    # When
    run = onboard(write(tmp_path, CONFIG), state, dry_run=True)

    # Then the diff is shown and nothing is created
    assert run.code == 0
    assert "+ community finance-isac" in run.output
    assert "+ schedule advisories: every 15m (rate(15 minutes))" in run.output
    assert "dry run: nothing written" in run.output
    assert not state.exists()


def test_dry_run_on_an_onboarded_state_leaves_its_files_alone(tmp_path: Path) -> None:
    # Given
    state = tmp_path / "state"
    assert onboard(write(tmp_path, CONFIG), state).code == 0
    before = snapshot(state)

    # When
    run = onboard(write(tmp_path, NARROWED, "narrowed.yaml"), state, dry_run=True)

    # Then
    assert run.code == 0
    assert "scope.share_with: -fsa" in run.output
    assert snapshot(state) == before
    onboarded = load_registry(state)
    assert onboarded is not None
    version, config = onboarded
    assert version == 1 and config.connectors[0].scope is not None  # the dry run wrote nothing
    assert config.connectors[0].scope.share_with == ["power-isac", "fsa"]


def test_apply_then_the_same_again_is_no_change(tmp_path: Path) -> None:
    # Given
    state, config = tmp_path / "state", write(tmp_path, CONFIG)

    # When
    first = onboard(config, state)
    second = onboard(config, state)

    # Then
    assert first.code == 0 and "applied as version 1 by alice" in first.output
    assert second.code == 0 and "no change" in second.output and "applied" not in second.output
    assert "(version 1)" in second.output


def test_history_shows_every_change_who_and_what(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given two changes by two people, the second narrowing a scope, a third widening it back
    state = tmp_path / "state"
    onboard(write(tmp_path, CONFIG), state)
    monkeypatch.setenv("USER", "bob")
    onboard(write(tmp_path, NARROWED, "narrowed.yaml"), state)
    monkeypatch.setenv("USER", "mallory")
    onboard(write(tmp_path, CONFIG, "wide-again.yaml"), state)

    # When
    run = onboard(None, state, history=True)

    # Then
    assert run.code == 0
    lines = run.output.splitlines()
    headers = [line for line in lines if line.startswith("version ")]
    assert [h.split(" · ")[0] for h in headers] == ["version 1", "version 2", "version 3"]
    assert [h.split(" · ")[2] for h in headers] == ["alice", "bob", "mallory"]
    assert "  ~ connector advisories" in lines
    assert "      scope.exclude: +{kind: regulator}" in lines
    assert "  ! widens connector advisories: scope.share_with: +fsa; scope.exclude: -{kind: regulator}" in lines
    assert run.output.count("(widened no sender)") == 2


def test_invalid_config_returns_2_with_file_and_line(tmp_path: Path) -> None:
    # Given an unknown community in share_with, on line 13
    config = write(tmp_path, CONFIG.replace("[power-isac, fsa]", "[power-isac, fsa-typo]"))
    state = tmp_path / "state"

    # When
    run = onboard(config, state)

    # Then
    assert run.code == 2
    assert f"{config}:13: connectors[0].scope.share_with[1]: unknown community 'fsa-typo'" in run.output
    assert not state.exists()


def test_removing_a_community_with_pending_objects_needs_force(tmp_path: Path) -> None:
    # Given an onboarded hub with one input waiting for approval
    state = tmp_path / "state"
    onboard(write(tmp_path, CONFIG), state)
    with EmbeddedAws(state) as embedded:
        embedded.state.put_pending(
            PendingItem("p-1", "advisories", "CERT", "2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z", [], "in.json")
        )
    without_fsa = write(tmp_path, WITHOUT_FSA, "without-fsa.yaml")

    # When
    refused = onboard(without_fsa, state)
    forced = onboard(without_fsa, state, force=True)

    # Then
    assert refused.code == 1
    assert "1 pending input(s)" in refused.output and "fsa" in refused.output and "--force" in refused.output
    assert forced.code == 0 and "- community fsa (regulator)" in forced.output
    onboarded = load_registry(state)
    assert onboarded is not None and onboarded[1].community("fsa") is None


def test_load_registry_is_none_before_onboarding(tmp_path: Path) -> None:
    assert load_registry(tmp_path / "nothing-here") is None


# --- --aws, against a stack on moto's server ---------------------------------------------------------

REGION = "us-east-1"


class Session:
    """A boto3 session stand-in whose clients talk to the test's moto server."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def deploy(session: Session, stack: str, poller: bool) -> None:
    """A stand-in for the hub's stack: the registry table and, optionally, the poller's outputs."""
    outputs: dict[str, Any] = {"RegistryTableName": {"Value": {"Ref": "Registry"}}}
    if poller:
        outputs["PollerFunctionArn"] = {"Value": "arn:aws:lambda:us-east-1:123456789012:function:poller"}
        outputs["SchedulerRoleArn"] = {"Value": "arn:aws:iam::123456789012:role/scheduler"}
    template = {
        "Resources": {
            "Registry": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "TableName": f"{stack}-registry",
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [
                        {"AttributeName": "pk", "AttributeType": "S"},
                        {"AttributeName": "sk", "AttributeType": "S"},
                    ],
                    "KeySchema": [
                        {"AttributeName": "pk", "KeyType": "HASH"},
                        {"AttributeName": "sk", "KeyType": "RANGE"},
                    ],
                },
            }
        },
        "Outputs": outputs,
    }
    session.client("cloudformation").create_stack(StackName=stack, TemplateBody=orjson.dumps(template).decode())


def test_aws_applies_to_the_stacks_table_and_syncs_schedules(
    tmp_path: Path, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a deployed hub named by RENKEI_STACK, with its poller
    session = Session(endpoint)
    deploy(session, "HubWithPoller", poller=True)
    monkeypatch.setenv("RENKEI_STACK", "HubWithPoller")

    # When
    run = onboard(write(tmp_path, CONFIG), None, aws=True, session=session)
    again = onboard(write(tmp_path, CONFIG), None, aws=True, session=session)

    # Then the change is applied by the caller's identity, and the schedule exists once
    assert run.code == 0, run.output
    assert "table HubWithPoller-registry" in run.output
    assert "applied as version 1 by arn:aws:sts::123456789012:" in run.output
    assert "schedule renkei-advisories created: rate(15 minutes)" in run.output
    assert again.code == 0 and "no change" in again.output and "created" not in again.output
    schedules = session.client("scheduler").list_schedules()["Schedules"]
    assert [s["Name"] for s in schedules] == ["renkei-advisories"]


def test_aws_without_a_poller_skips_schedules_and_says_so(
    tmp_path: Path, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the stack the CDK app names after the hub, and no RENKEI_STACK
    session = Session(endpoint)
    deploy(session, "Renkei-hub-a", poller=False)
    monkeypatch.delenv("RENKEI_STACK", raising=False)

    run = onboard(write(tmp_path, CONFIG), None, aws=True, session=session)

    assert run.code == 0, run.output
    assert "table Renkei-hub-a-registry" in run.output
    assert "the poller is not deployed yet" in run.output
    assert "applied as version 1" in run.output


def test_aws_without_the_stack_is_refused(tmp_path: Path, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RENKEI_STACK", "NoSuchHub")

    run = onboard(write(tmp_path, CONFIG), None, aws=True, session=Session(endpoint))

    assert run.code == 1
    assert "cannot read stack 'NoSuchHub'" in run.output


def test_state_or_aws_exactly_one(tmp_path: Path) -> None:
    config = write(tmp_path, CONFIG)

    assert onboard(config, None).code == 2
    assert onboard(config, tmp_path / "state", aws=True).code == 2


def test_onboard_keeps_member_logins_and_the_operator_token_only_as_hashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.taxii_server.credentials import Logins
    from gateway.approval import OPERATOR_TOKEN_CURSOR, verify_token
    from local.config_file import load_config_or_raise

    with_logins = CONFIG.replace(
        "  - {id: power-isac, kind: isac, deliver: [{pull: {}}]}",
        "  - {id: power-isac, kind: isac, deliver: [{pull: {users: [{username: power-co, password_env: PW_A},"
        " {username: late-co, password_env: PW_B}]}}]}",
    )
    monkeypatch.setenv("PW_A", "correct horse")
    monkeypatch.delenv("PW_B", raising=False)
    monkeypatch.setenv("RENKEI_OPERATOR_TOKEN", "operator-secret-token")
    path = write(tmp_path, with_logins)
    run = onboard(path, tmp_path / "state")
    assert run.code == 0 and "logins not stored" in run.output and "late-co" in run.output
    files = b"".join(p.read_bytes() for p in (tmp_path / "state").rglob("*") if p.is_file())
    assert b"correct horse" not in files and b"operator-secret-token" not in files
    with EmbeddedAws(tmp_path / "state") as aws:
        config = load_config_or_raise(path)
        logins = Logins(aws.state)
        assert logins.community_of(config, "power-co", "correct horse") == "power-isac"
        assert logins.community_of(config, "power-co", "wrong") is None
        assert logins.community_of(config, "late-co", "") is None
        held = aws.state.get_cursor(OPERATOR_TOKEN_CURSOR) or {}
        assert verify_token("operator-secret-token", str(held.get("sha256")))
