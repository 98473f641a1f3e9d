"""`gateway demo`: the bundled example end to end on the embedded default, and what went where and why.

Until the connectors for feeds, mail, TAXII and peers land, the demo runs the two `stix` connectors
of examples/gateway.yaml: the analysts' advisory (TLP in several dialects, a broken bundle) and an
anonymised member's report with its follow-up a day later.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import orjson
from rich.console import Console

from connectors.stix.source import read_inputs
from gateway.pipeline import RunResult
from gateway.senders import sender_for
from local import report
from local.config_file import load_config_or_raise
from local.runtime import embedded_hub

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STEPS = (
    ("analyst-drop", "inbox", "The hub's analysts publish a campaign advisory (and a broken bundle)"),
    ("isac-drop", "followup", "Bank C reports a smishing wave, anonymously, then sends an update"),
)


def run_demo(as_json: bool = False, examples: Path = EXAMPLES) -> dict[str, object]:
    """Run every step on a fresh embedded hub; print tables (or one JSON object). Returns the JSON form."""
    console = Console()
    config = load_config_or_raise(examples / "gateway.yaml")
    steps: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="renkei-demo-") as tmp:
        with embedded_hub(config, Path(tmp) / "state", Path(tmp) / "out") as hub:
            if not as_json:
                console.print(f"[dim]embedded AWS (moto) on {hub.aws.endpoint}[/dim]")
            for connector_id, folder, title in STEPS:
                result = RunResult()
                sender = sender_for(config, connector_id)
                for name, data in read_inputs(str(examples / folder)):
                    result.merge(hub.pipeline.ingest(data, sender, Path(name).name))
                steps.append(_step_json(connector_id, title, result))
                if not as_json:
                    console.rule(f"[bold]{title}[/bold]  ({connector_id})")
                    report.print_run(console, result, config)
    output: dict[str, object] = {"steps": steps}
    if as_json:
        sys.stdout.write(orjson.dumps(output).decode() + "\n")
    return output


def _step_json(connector_id: str, title: str, result: RunResult) -> dict[str, object]:
    withheld = [
        {"object": d.object, "destination": d.destination, "reason": d.reason}
        for d in result.decisions
        if not d.allowed
    ]
    return {
        "connector": connector_id,
        "title": title,
        "summary": result.summary(),
        "withheld": withheld,
        "quarantined": [{"input": q.input_name, "reason": q.reason} for q in result.quarantined],
        "followups": result.followups,
    }
