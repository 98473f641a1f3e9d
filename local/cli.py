"""The `gateway` command (see ../shared/contract/README.md): check, schema, ingest, trace, pending, approve, demo."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console

from connectors.sources import Connector, source_for
from gateway.errors import SourceUnavailable
from gateway.gc_tuning import tune_for_batches
from gateway.intake import sender_of_pending, take
from gateway.pipeline import RunResult
from gateway.senders import UnknownConnector
from local import report
from local.config_file import ConfigInvalid, check_file, config_json_schema, load_config_or_raise
from local.onboard import load_registry, run_onboard
from local.runtime import embedded_hub
from schemas.config import HubConfig

app = typer.Typer(
    name="gateway",
    help="Renkei: a federated gateway for threat-intelligence sharing (STIX 2.1, TLP 2.0, sender scope).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="hub config file (else the onboarded registry)")]
StateOpt = Annotated[Path | None, typer.Option("--state", help="folder that keeps the embedded state between runs")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the result as one JSON object on stdout")]

USAGE_ERROR = 2


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(USAGE_ERROR)


def _routing(config: Path | None, state: Path | None) -> tuple[HubConfig, str]:
    """Routing comes from --config for this run, else from the registry onboarded into --state.

    With it, the version that decisions record: `registry:N`, or `file:NAME@sha256:…` of the file's bytes.
    """
    if config is not None:
        try:
            digest = hashlib.sha256(config.read_bytes()).hexdigest()[:16]
            return load_config_or_raise(config), f"file:{config.name}@sha256:{digest}"
        except ConfigInvalid as invalid:
            for problem in invalid.errors:
                err.print(str(problem), highlight=False)
            raise typer.Exit(USAGE_ERROR) from None
    if state is not None:
        onboarded = load_registry(state)
        if onboarded is not None:
            return onboarded[1], f"registry:{onboarded[0]}"
    raise _fail("no routing: give --config FILE, or --state DIR after `gateway onboard --config FILE --state DIR`")


@app.command()
def check(config: Annotated[Path, typer.Option("--config", help="hub config file")]) -> None:
    """Validate a hub config; every error as FILE:LINE: message. Exit 0 valid, 2 invalid."""
    problems = check_file(config)
    for problem in problems:
        typer.echo(str(problem))
    if problems:
        raise typer.Exit(USAGE_ERROR)
    typer.echo(f"{config}: valid")


@app.command()
def schema() -> None:
    """Print the JSON Schema of the hub config."""
    typer.echo(json.dumps(config_json_schema(), indent=2))


@app.command()
def onboard(
    config: Annotated[Path | None, typer.Option("--config", help="hub config file to onboard")] = None,
    state: StateOpt = None,
    aws: Annotated[bool, typer.Option("--aws", help="the deployed hub (stack Renkei, or $RENKEI_STACK)")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would change, write nothing")] = False,
    force: Annotated[bool, typer.Option("--force", help="remove communities even while inputs wait")] = False,
    history: Annotated[
        bool, typer.Option("--history", help="every applied change: who, when, what, whom it widened")
    ] = False,
) -> None:
    """Validate a hub config, show what changes, write it to the registry. Exit 0 applied, 1 refused, 2 invalid."""
    code = run_onboard(config, state, aws=aws, dry_run=dry_run, force=force, history=history, console=Console())
    raise typer.Exit(code)


@app.command()
def ingest(
    inputs: Annotated[list[str], typer.Argument(help="CONNECTOR_ID[=INPUT]: a file, a folder or a URL")],
    config: ConfigOpt = None,
    state: StateOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="dry run: write what each community would receive")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run inputs, in order, each through its connector and the whole pipeline."""
    hub_config, config_version = _routing(config, state)
    base = config.parent if config else Path.cwd()
    plan = _plan(hub_config, inputs)
    total = RunResult()
    with embedded_hub(hub_config, state, out, config_version) as hub, report.progress(err, len(plan)) as advance:
        asker = hub.approval_mailer() if out is None else None  # a dry run mails nobody
        for connector, location in plan:
            source = source_for(hub_config, connector, hub.aws.state, base)
            try:
                for intake in source.read(location):
                    total.merge(take(hub.pipeline, hub_config, connector.id, intake, asker))
                    advance()
            except SourceUnavailable as exc:
                raise _fail(str(exc)) from None
        if out is not None:
            report.write_out_dir(out, total, hub.aws.blobs)
    if as_json:
        sys.stdout.write(orjson.dumps(total.summary()).decode() + "\n")
    else:
        report.print_run(Console(), total, hub_config)


def _plan(config: HubConfig, inputs: list[str]) -> list[tuple[Connector, str | None]]:
    """(connector, location) pairs; a bare id (location None) polls the connector's configured source."""
    plan = []
    for spec in inputs:
        connector_id, _, location = spec.partition("=")
        connector = config.connector(connector_id)
        if connector is None:
            known = ", ".join(c.id for c in config.connectors) or "none"
            raise _fail(f"unknown connector {connector_id!r} (known: {known})")
        plan.append((connector, location or None))
    return plan


@app.command()
def trace(
    object_id: Annotated[str, typer.Argument(help="a STIX id")],
    state: Annotated[Path, typer.Option("--state", help="the embedded state folder")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """For each version of an object: every destination, allowed or withheld, and the reason. Exit 1 if unknown."""
    hub_config, _ = _routing(config, state)
    with embedded_hub(hub_config, state) as hub:
        history = hub.aws.state.history(object_id)
    if not history:
        err.print(f"{object_id}: unknown to this hub")
        raise typer.Exit(1)
    if as_json:
        sys.stdout.write(orjson.dumps(report.trace_json(object_id, history)).decode() + "\n")
    else:
        report.print_trace(Console(), object_id, history)


@app.command()
def pending(
    state: Annotated[Path, typer.Option("--state")], config: ConfigOpt = None, as_json: JsonOpt = False
) -> None:
    """List what waits for a sender's approval."""
    hub_config, _ = _routing(config, state)
    with embedded_hub(hub_config, state) as hub:
        items = hub.aws.state.pending()
    if as_json:
        sys.stdout.write(orjson.dumps([report.pending_json(i) for i in items]).decode() + "\n")
    else:
        report.print_pending(Console(), items)


@app.command()
def approve(
    pending_id: Annotated[str, typer.Argument(help="an id from `gateway pending`")],
    state: Annotated[Path, typer.Option("--state")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Release a pending input into routing."""
    hub_config, config_version = _routing(config, state)
    with embedded_hub(hub_config, state, config_version=config_version) as hub:
        item = next((p for p in hub.aws.state.pending() if p.pending_id == pending_id), None)
        if item is None:
            raise _fail(f"{pending_id}: nothing pending with that id")
        try:
            sender = sender_of_pending(hub_config, item)
        except UnknownConnector as gone:
            raise _fail(f"{pending_id}: its sender is no longer configured ({gone})") from None
        result = hub.pipeline.approve(pending_id, sender)
    if result is None:
        raise _fail(f"{pending_id}: already approved or expired")
    if as_json:
        sys.stdout.write(orjson.dumps(result.summary()).decode() + "\n")
    else:
        report.print_run(Console(), result, hub_config)


@app.command()
def serve(
    config: ConfigOpt = None,
    state: StateOpt = None,
    host: Annotated[str, typer.Option("--host", help="address of the HTTP API")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="port of the HTTP API")] = 8080,
) -> None:
    """Run the hub: pollers on their schedules, mail dropped into folders, the workers. Ctrl-C stops it."""
    from local import serve as serving  # loads threads and servers only when serving

    if config is None and state is None:
        raise _fail("give --config FILE, or --state DIR after `gateway onboard --config FILE --state DIR`")
    fixed = _routing(config, state) if config is not None else None
    if fixed is None:
        _routing(None, state)  # fail now, clearly, when nothing is onboarded
    base = config.parent if config else Path.cwd()
    serving.serve(serving.Routing(fixed, state, base), state, base, host, port, err)


@app.command()
def demo(as_json: JsonOpt = False) -> None:
    """Run the bundled example end to end on the embedded default and show what went where and why."""
    from local.demo import run_demo  # the demo's fixtures load only when asked for

    run_demo(as_json=as_json)


def main() -> None:  # pragma: no cover - console entry point
    tune_for_batches()
    app()
