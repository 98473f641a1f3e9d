"""`gateway onboard`: validate a hub config, show what it changes in the registry, apply it and its poll schedules."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.text import Text

from connectors.aws.dynamo_state import DynamoStateStore
from connectors.aws.registry import DynamoRegistryStore, current_from_item, is_current_item
from connectors.aws.schedules import SchedulerSync
from connectors.taxii_server.credentials import provision
from gateway.approval import OPERATOR_TOKEN_CURSOR, token_hash
from gateway.errors import ConflictError, RenkeiError, RetryableError
from gateway.onboarding import ChangeRecord, change_record, diff_configs, schedules_of
from gateway.ports import RegistryStore, StateStore
from local.config_file import load_config
from local.embedded import EmbeddedAws
from schemas.config import HubConfig
from schemas.tables import REGISTRY, stack_name_for

APPLIED, REFUSED, INVALID = 0, 1, 2
STACK_ENV = "RENKEI_STACK"
OPERATOR_TOKEN_ENV = "RENKEI_OPERATOR_TOKEN"  # noqa: S105 - a variable name
_STYLE = {"+": "green", "-": "red", "~": "yellow", "!": "bold magenta"}


@dataclass
class Target:
    """Where the registry is, who is changing it, and what else a change there touches."""

    store: RegistryStore
    where: str
    who: str
    pending_count: Callable[[], int] | None = None  # objects waiting for approval, if the state is reachable
    scheduler: SchedulerSync | None = None  # None: no schedules to keep (embedded), or no poller deployed
    no_scheduler_reason: str = ""
    state: StateStore | None = None  # where the TAXII logins' hashes go; None: the state is not reachable


class TargetUnavailable(RenkeiError):
    """The registry cannot be reached: no stack, no output, no credentials."""


def run_onboard(
    config_path: Path | None,
    state_dir: Path | None,
    aws: bool,
    dry_run: bool,
    force: bool,
    history: bool,
    console: Console,
    *,
    session: Any = None,
) -> int:
    """Run `gateway onboard`; returns the exit code: 0 applied (or nothing to apply), 1 refused, 2 invalid.

    `session` is a boto3 Session for `aws` (default: boto3's default credentials and region).
    """
    config: HubConfig | None = None
    if aws == (state_dir is not None):
        console.print("error: give --state DIR (the embedded state) or --aws (the deployed hub)", style="red")
        return INVALID
    if not history:
        if config_path is None:
            console.print("error: give --config FILE (or --history)", style="red", highlight=False)
            return INVALID
        config, errors = load_config(config_path, check_env=False)
        for error in errors:
            console.print(Text(str(error)), highlight=False)
        if errors or config is None:
            return INVALID
    try:
        stack = stack_name_for(config.hub.id) if config is not None else None
        with _target(state_dir, aws, dry_run or history, session, stack) as target:
            if config is None:
                print_history(console, target.store.history())
                return APPLIED
            return _onboard(config, str(config_path), target, dry_run, force, console)
    except (TargetUnavailable, RetryableError) as exc:
        console.print(Text(f"error: {exc}", style="red"))
        return REFUSED


def _onboard(config: HubConfig, source: str, target: Target, dry_run: bool, force: bool, console: Console) -> int:
    held = target.store.current()
    diff = diff_configs(held[1] if held else None, config)
    version = f"version {held[0]}" if held else "nothing onboarded yet"
    console.print(Text(f"{source} against {target.where} ({version}):", style="bold"))
    if diff.is_empty:
        console.print("  no change: the registry already holds this config", highlight=False)
    for line in diff.render():
        console.print(Text(f"  {line}", style=_STYLE.get(line[:1], "")))
    if dry_run:
        console.print("dry run: nothing written", highlight=False)
        return APPLIED
    removed = diff.names("community", "removed")
    if removed and not force and target.pending_count is not None:
        waiting = target.pending_count()
        if waiting:
            console.print(
                Text(
                    f"refused: {waiting} pending input(s) still wait for approval and could be routed to "
                    f"{', '.join(removed)}, which this change removes; approve or let them expire first, "
                    "or run again with --force to remove anyway",
                    style="red",
                )
            )
            return REFUSED
    if not diff.is_empty:
        record = change_record(diff, config, target.who, datetime.now(UTC).isoformat(timespec="seconds"))
        try:
            applied = target.store.apply(config, held[0] if held else None, record)
        except ConflictError:
            console.print(
                Text("refused: someone applied another change meanwhile; run again to see the diff anew", style="red")
            )
            return REFUSED
        console.print(Text(f"applied as version {applied} by {target.who}", style="bold green"))
    _sync_schedules(config, target, console)
    _store_logins(config, target, console)
    return APPLIED


def store_operator_token(state: StateStore) -> None:
    """The approvals endpoint's operator token, from `RENKEI_OPERATOR_TOKEN`: only its sha256 is kept."""
    operator = os.environ.get(OPERATOR_TOKEN_ENV)
    if operator:
        state.put_cursor(OPERATOR_TOKEN_CURSOR, {"sha256": token_hash(operator)})


def _store_logins(config: HubConfig, target: Target, console: Console) -> None:
    """The TAXII server checks member logins against salted hashes in state: store them from the operator's env."""
    if target.state is None:
        return
    store_operator_token(target.state)
    missing = provision(config, target.state)
    if missing:
        console.print(
            Text(f"  logins not stored (their password variable is unset here): {', '.join(sorted(missing))}",
                 style="yellow")
        )  # fmt: skip


def _sync_schedules(config: HubConfig, target: Target, console: Console) -> None:
    if target.no_scheduler_reason:
        console.print(Text(target.no_scheduler_reason, style="yellow"))
    if target.scheduler is None:
        return
    # Synced even when the registry did not change: that repairs drift and catches up a late poller.
    for action in target.scheduler.sync(schedules_of(config).values()):
        console.print(Text(f"  {action.render()}", style=_STYLE["~"]))


def print_history(console: Console, history: list[ChangeRecord]) -> None:
    """Every applied change: version, when, who, the diff, and whom it widened."""
    if not history:
        console.print("nothing onboarded yet", highlight=False)
    for record in history:
        console.print(Text(f"version {record.version} · {record.applied_at} · {record.applied_by}", style="bold"))
        for line in record.lines:
            console.print(Text(f"  {line}", style=_STYLE.get(line[:1], "")))
        for widening in record.widenings:
            console.print(Text(f"  {widening.render()}", style=_STYLE["!"]))
        if not record.widenings:
            console.print(Text("  (widened no sender)", style="dim"))


# --- where the registry is ---------------------------------------------------------------------------


@contextmanager
def _target(state_dir: Path | None, aws: bool, read_only: bool, session: Any, stack: str | None) -> Iterator[Target]:
    if aws:
        yield aws_target(session, stack)
        return
    assert state_dir is not None  # run_onboard checked: --state or --aws
    with _embedded(state_dir, save=not read_only) as embedded:
        yield Target(
            registry_store(embedded),
            f"the embedded state in {state_dir}",
            _local_user(),
            pending_count=lambda: len(embedded.state.pending()),
            state=embedded.state,
        )


@contextmanager
def _embedded(state_dir: Path, save: bool) -> Iterator[EmbeddedAws]:
    """The embedded default on `state_dir`; without `save`, the folder is left exactly as it was (not even created)."""
    with EmbeddedAws(state_dir if save or state_dir.exists() else None) as embedded:
        if not save:
            embedded.state_dir = None  # read only: EmbeddedAws writes its tables back on exit otherwise
        yield embedded


def registry_store(embedded: EmbeddedAws) -> DynamoRegistryStore:
    """The registry inside a running embedded default."""
    return DynamoRegistryStore(embedded.table_name(REGISTRY.logical_name), embedded.dynamodb)


def load_registry(state_dir: Path) -> tuple[int, HubConfig] | None:
    """(version, config) onboarded into the embedded state `state_dir`; None when nothing is.

    Read from the registry table as EmbeddedAws saved it, without starting moto and loading the whole
    state: `ingest`, `trace`, `pending` and `approve` call this on every run.
    """
    path = state_dir / "tables" / f"{REGISTRY.logical_name}.jsonl"
    if not path.exists():
        return None
    for line in path.read_bytes().splitlines():
        item = orjson.loads(line) if line.strip() else {}
        if is_current_item(item):
            return current_from_item(item)
    return None


def _local_user() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "unknown"


def stack_outputs(session: Any, stack: str | None = None) -> dict[str, str]:
    """The outputs of the deployed hub's stack ($RENKEI_STACK, else `Renkei-<hub id>`). Raises TargetUnavailable."""
    name = os.environ.get(STACK_ENV) or stack
    if not name:
        raise TargetUnavailable(f"which hub? give --config FILE, or set {STACK_ENV} to the stack's name")
    try:
        stacks = session.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
    except (ClientError, BotoCoreError) as exc:
        raise TargetUnavailable(f"cannot read stack {name!r} ({exc}); deploy it, or set {STACK_ENV}") from exc
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def aws_target(session: Any = None, stack: str | None = None) -> Target:
    """The deployed hub's registry (and schedules when the poller is deployed). Raises TargetUnavailable."""
    if session is None:
        import boto3  # only --aws needs the default credentials chain

        session = boto3.Session()
    outputs = stack_outputs(session, stack)
    table = outputs.get("RegistryTableName")
    if not table:
        raise TargetUnavailable("the stack has no RegistryTableName output: deploy the current version of the stack")
    try:
        who = str(session.client("sts").get_caller_identity()["Arn"])
    except (ClientError, BotoCoreError) as exc:
        raise TargetUnavailable(f"cannot tell who you are on AWS: {exc}") from exc
    dynamodb = session.client("dynamodb")
    target = Target(DynamoRegistryStore(table, dynamodb), f"table {table}", who)
    state_table = outputs.get("StateTableName")
    if state_table:
        target.state = DynamoStateStore(state_table, dynamodb)
        target.pending_count = lambda: len(DynamoStateStore(state_table, dynamodb).pending())
    poller, role = outputs.get("PollerFunctionArn"), outputs.get("SchedulerRoleArn")
    if poller and role:
        group = outputs.get("ScheduleGroupName", "default")
        target.scheduler = SchedulerSync(session.client("scheduler"), group, poller, role)
    else:
        target.no_scheduler_reason = (
            "the poller is not deployed yet (no PollerFunctionArn / SchedulerRoleArn output): schedules skipped; "
            "run onboard --aws again once it is"
        )
    return target
