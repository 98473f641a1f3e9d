"""What the CLI shows people (rich tables) and writes for scripts (`--out DIR`, `--json`)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from gateway.model import PendingItem, VersionRecord
from gateway.pipeline import RunResult
from gateway.ports import BlobStore
from schemas.config import HubConfig

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")

# Reasons as a person reads them.
_WORDS = {
    "scope:excluded": "excluded by the sender's scope",
    "tlp:red": "TLP:RED is never relayed",
    "tlp:amber-not-in-scope": "AMBER, not named in the sender's scope",
    "tlp:amber+strict-not-in-scope": "AMBER+STRICT, not named in the sender's scope",
    "tlp:amber+strict-not-organization": "AMBER+STRICT goes only to named organisations",
    "tlp:green-not-in-scope": "GREEN, outside the sender's community and scope",
    "scope:not-shared-with": "not in the sender's share_with",
    "accepts:type": "the community does not accept this type",
    "accepts:min-confidence": "below the community's minimum confidence",
    "accepts:min-cvss": "below the community's minimum CVSS",
    "accepts:no-secret": "the community opted out of AMBER and stricter",
    "ref:referenced-object-withheld": "refers to an object withheld from this community",
    "origin:source-system": "that is where it came from",
    "loop:hub-in-hop-list": "already passed through this hub (loop)",
    "loop:peer-in-hop-list": "already passed through that hub",
    "peer:tlp-stays-in-hub": "TLP does not let it leave this hub",
    "peer:scope-within-hub": "the scope stays within this hub",
    "anonymize:sender-identity": "the anonymised sender's own identity",
    "anonymize:private-value": "holds a value the sender keeps private",
    "anonymize:mail-recipient": "a recipient of the reported mail",
    "anonymize:refers-to-private-object": "refers to a private object",
}


def words(reason: str) -> str:
    if reason.startswith("scope:excluded-kind:"):
        return f"the sender excludes every {reason.rsplit(':', 1)[1]}"
    return _WORDS.get(reason, reason)


@contextmanager
def progress(console: Console, total: int) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr when it is a terminal; silent otherwise."""
    if not console.is_terminal or total < 2:
        yield lambda: None
        return
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("inputs", total=total)
        yield lambda: bar.advance(task)


def write_out_dir(out: Path, result: RunResult, blobs: BlobStore) -> None:
    """The layout of the contract: summary.json, decisions.jsonl, quarantine/<n>/, pending/*.json."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_bytes(orjson.dumps(result.summary(), option=orjson.OPT_INDENT_2))
    with (out / "decisions.jsonl").open("ab") as lines:
        for d in result.decisions:
            row = {"object": d.object, "version": d.version, "destination": d.destination}
            lines.write(orjson.dumps({**row, "allowed": d.allowed, "reason": d.reason}) + b"\n")
    quarantine = out / "quarantine"
    start = len(list(quarantine.iterdir())) if quarantine.exists() else 0
    for n, record in enumerate(result.quarantined, start=start + 1):
        folder = quarantine / str(n)
        folder.mkdir(parents=True, exist_ok=True)
        name = "object.json" if record.object_id else _SAFE_NAME.sub("_", Path(record.input_name).name) or "input"
        (folder / name).write_bytes(blobs.get(record.raw_ref))
        (folder / "reason.json").write_bytes(orjson.dumps(asdict(record), option=orjson.OPT_INDENT_2))
    if result.pending:
        (out / "pending").mkdir(exist_ok=True)
        for item in result.pending:
            (out / "pending" / f"{item.pending_id}.json").write_bytes(
                orjson.dumps(pending_json(item, with_objects=True), option=orjson.OPT_INDENT_2)
            )


def print_run(console: Console, result: RunResult, config: HubConfig) -> None:
    summary = result.summary()
    console.print(
        f"[bold]{summary['objects']}[/bold] objects: {summary['delivered']} delivered, {summary['withheld']} withheld, "
        f"{summary['pending']} pending, {summary['quarantined']} quarantined, {summary['duplicate']} duplicate"
    )
    table = Table(title="What went where, and why", show_lines=False)
    table.add_column("community")
    table.add_column("received", justify="right")
    table.add_column("withheld (why)")
    withheld: dict[str, Counter[str]] = {}
    for d in result.decisions:
        if not d.allowed:
            withheld.setdefault(d.destination, Counter())[words(d.reason)] += 1
    for community in config.communities:
        why = withheld.get(community.id, Counter())
        text = "; ".join(f"{n} {reason}" for reason, n in why.most_common())
        received = str(result.deliveries.get(community.id, 0))
        if result.undelivered.get(community.id):
            received += f" ({result.undelivered[community.id]} undelivered: channel not built yet)"
        table.add_row(community.id, received, text or "-")
    console.print(table)
    for record in result.quarantined:
        console.print(
            f"[yellow]quarantined[/yellow] {record.input_name}: {record.reason} ({record.detail})",
            highlight=False,
        )
    for pending_id in result.unasked:
        console.print(f"[yellow]approval request not sent[/yellow] for {pending_id}: release it with `gateway approve`")
    for item in result.pending:
        line = f"{item.pending_id}: objects from {item.connector}, expires {item.expires}"
        console.print(f"[cyan]pending[/cyan] {line}", highlight=False)
    # The same change reads the same for every community that had the earlier version: say it once.
    by_summary: dict[str, list[str]] = {}
    for followup in result.followups:
        by_summary.setdefault(followup["summary"], []).append(followup["destination"])
    for summary, destinations in by_summary.items():
        console.print(f"[green]follow-up[/green] for {', '.join(destinations)}:\n{summary}", highlight=False)


def trace_json(object_id: str, history: list[VersionRecord]) -> dict[str, Any]:
    return {
        "object": object_id,
        "versions": [
            {
                "version": r.version,
                "status": r.status,
                "tlp": r.tlp,
                "connector": r.connector,
                "recorded_at": r.recorded_at,
                "config_version": r.config_version,
                "destinations": [
                    {"destination": d, "allowed": allowed, "reason": reason}
                    for d, (allowed, reason) in sorted(r.decisions.items())
                ],
            }
            for r in history
        ],
    }


def print_trace(console: Console, object_id: str, history: list[VersionRecord]) -> None:
    console.print(f"[bold]{object_id}[/bold]")
    for record in history:
        routed_under = f", routed under {record.config_version}" if record.config_version else ""
        title = f"version {record.version} ({record.status}, TLP:{record.tlp}, from {record.connector}{routed_under})"
        table = Table(title=title)
        table.add_column("destination")
        table.add_column("")
        table.add_column("reason")
        for dest, (allowed, reason) in sorted(record.decisions.items()):
            table.add_row(
                dest,
                "[green]allowed[/green]" if allowed else "[red]withheld[/red]",
                f"{reason}: {words(reason)}",
            )
        console.print(table)


def pending_json(item: PendingItem, with_objects: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "pending_id": item.pending_id,
        "connector": item.connector,
        "created": item.created,
        "expires": item.expires,
        "input": item.input_name,
        "objects": len(
            [o for o in item.objects if o.get("type") not in ("marking-definition", "extension-definition")]
        ),
    }
    if with_objects:
        data["stix"] = item.objects
    return data


def print_pending(console: Console, items: list[PendingItem]) -> None:
    if not items:
        console.print("nothing pending")
        return
    table = Table(title="Waiting for the sender's approval")
    for column in ("pending id", "connector", "objects", "expires"):
        table.add_column(column)
    for item in items:
        row = pending_json(item)
        table.add_row(row["pending_id"], row["connector"], str(row["objects"]), row["expires"])
    console.print(table)
