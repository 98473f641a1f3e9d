"""`gateway demo`: the bundled example end to end on the embedded default, and what went where and why.

The steps use the connectors of examples/gateway.yaml on the inputs under examples/: a JVN RDF feed and its
update two days later, CISA's KEV catalog, a J-CSIP-style member report by mail that waits for the member's
approval, the hub analysts' advisory (TLP in several dialects, and a broken bundle) and an anonymised
member's report with its follow-up. Not in it yet: a TAXII server as Finance ISAC and a second hub as peer
(their connectors are not built; deliveries to them appear as undelivered in a real run).
"""

from __future__ import annotations

import email
import re
import sys
import tempfile
from dataclasses import replace
from email import policy
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

import orjson
from rich.console import Console

from connectors.email.source import intake_from_message
from connectors.sources import source_for
from gateway.intake import take
from gateway.pipeline import RunResult
from local import report
from local.config_file import load_config_or_raise
from local.embedded import REGION
from local.runtime import EmbeddedHub, embedded_hub
from schemas.config import EmailConnector, HubConfig

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STEPS = (
    ("jvn-feed", "feeds/jvn-rdf.xml", "JVN publishes two advisories (RSS 1.0/RDF, in Japanese)"),
    ("cisa-kev", "feeds/kev.json", "CISA adds two CVEs to its Known Exploited Vulnerabilities catalog"),
    ("jcsip-mailbox", "mail", "Bank A reports a spear-phishing mail by e-mail: anonymous, TLP:AMBER, approval"),
    ("analyst-drop", "inbox", "The hub's analysts publish a campaign advisory (and a broken bundle)"),
    ("isac-drop", "followup", "Bank C reports a smishing wave, anonymously, then sends an update"),
    ("jvn-feed", "feeds/jvn-rdf-update.xml", "Two days later JVN updates an advisory: exploited, CVSS 9.1"),
    ("approve", "jcsip-mailbox", "Bank A replies APPROVE <token>: its report is released under its own policy"),
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
            for connector_id, location, title in STEPS:
                if connector_id == "approve":
                    result = _approve_all(hub, config, location)
                    connector_id = location
                else:
                    result = _ingest(hub, config, connector_id, str(examples / location), examples)
                steps.append(_step_json(connector_id, title, result))
                if not as_json:
                    console.rule(f"[bold]{title}[/bold]  ({connector_id})")
                    report.print_run(console, result, config)
    output: dict[str, object] = {"steps": steps}
    if as_json:
        sys.stdout.write(orjson.dumps(output).decode() + "\n")
    return output


def _ingest(hub: EmbeddedHub, config: HubConfig, connector_id: str, location: str, base: Path) -> RunResult:
    asker = hub.approval_mailer()  # Bank A's report waits for its approval, asked by mail
    connector = config.connector(connector_id)
    assert connector is not None, connector_id
    result = RunResult()
    for intake in source_for(config, connector, hub.aws.state, base).read(location):
        result.merge(take(hub.pipeline, config, connector_id, replace(intake, name=Path(intake.name).name), asker))
    return result


def _approve_all(hub: EmbeddedHub, config: HubConfig, connector_id: str) -> RunResult:
    """Bank A answers the hub's confirmation mail (sent to moto's SES) with `APPROVE <token>`."""
    connector = config.connector(connector_id)
    assert isinstance(connector, EmailConnector)
    confirmation = _last_mail_to("csirt@bank-a.example")
    token = re.search(r"^APPROVE (\S+)$", confirmation, re.MULTILINE)
    assert token is not None, "the hub asked for approval by mail"
    reply = EmailMessage()
    reply["Authentication-Results"] = "mx.hub.example.jp; dmarc=pass header.from=bank-a.example"
    reply["From"], reply["To"] = "CSIRT Bank A <csirt@bank-a.example>", connector.address
    reply["Subject"], reply["Date"] = "Re: [Renkei] approval", formatdate(localtime=False)
    reply.set_content(f"APPROVE {token.group(1)}\n\n> (the hub's request, quoted)\n")
    intake = intake_from_message(connector, reply.as_bytes(), "approval-reply.eml")
    return take(hub.pipeline, config, connector_id, intake)


def _last_mail_to(address: str) -> str:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    sent = [m for m in ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages if address in m.destinations]
    parsed = email.message_from_string(sent[-1].raw_data, policy=policy.default)
    body = parsed.get_body(("plain",))
    return str(body.get_content()) if body is not None else ""


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
