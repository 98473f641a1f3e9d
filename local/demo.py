"""`gateway demo`: the bundled example end to end on the embedded default, and what went where and why.

The steps use the connectors of examples/gateway.yaml on the inputs under examples/: Finance ISAC's indicator on
its TAXII 2.1 server, a JVN RDF feed and its update two days later, CISA's KEV catalog, a J-CSIP-style member
report by mail that waits for the member's approval, the hub analysts' advisory (TLP in several dialects, and a
broken bundle) and an anonymised member's report with its follow-up.

Every delivery is real: Finance ISAC is a medallion TAXII 2.1 server on 127.0.0.1 (its collection is read back
over TAXII), the partner hub abroad is a second Renkei hub (examples/partner-hub.yaml) whose peer inbox verifies
the signed bundles, fsa's mail goes to SES on moto. Keys and passwords are generated for the run.
"""

from __future__ import annotations

import email
import importlib.util
import os
import re
import secrets
import sys
import tempfile
from dataclasses import replace
from email import policy
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from connectors.email.source import intake_from_message
from connectors.sources import source_for
from gateway.intake import take
from gateway.pipeline import RunResult
from gateway.route import cvss_base_score
from local import report
from local.config_file import load_config_or_raise
from local.demo_peers import (
    PUBLISHER,
    PartnerHub,
    TaxiiServer,
    content,
    demo_secrets,
    environment,
    partner_hub,
    pointed_here,
    scope_of,
    taxii_server,
    tlp_of,
)
from local.embedded import REGION
from local.runtime import EmbeddedHub, embedded_hub
from schemas.config import BasicAuth, EmailConnector, HubConfig, TaxiiChannel

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FINANCE_ISAC = "finance-isac"
STEPS = (
    ("fin-isac-taxii", None, "Finance ISAC publishes an indicator on its TAXII 2.1 server; the hub polls it"),
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
    if importlib.util.find_spec("medallion") is None:
        raise SystemExit("gateway demo starts Finance ISAC's TAXII server with medallion: pip install 'renkei[demo]'")
    console = Console()
    config = load_config_or_raise(examples / "gateway.yaml")
    partner_config = load_config_or_raise(examples / "partner-hub.yaml")
    collection_id, account = _finance_isac_collection(config)
    with tempfile.TemporaryDirectory(prefix="renkei-demo-") as tmp, environment(demo_secrets(config, partner_config)):
        users = {account.username: os.environ[account.password_env], PUBLISHER: secrets.token_urlsafe(16)}
        with (
            taxii_server("Finance ISAC", collection_id, users) as finance,
            partner_hub(partner_config, Path(tmp) / "partner") as partner,
        ):
            live = pointed_here(config, finance.api_root, partner.inbox_url)
            published = orjson.loads((examples / "finance-isac" / "published.json").read_bytes())
            finance.publish(published)
            with embedded_hub(live, Path(tmp) / "state") as hub:
                if not as_json:
                    console.print(f"[dim]embedded AWS (moto) on {hub.aws.endpoint}; Finance ISAC's TAXII 2.1 server "
                                  f"(medallion) on {finance.api_root}; partner hub's inbox on "
                                  f"{partner.inbox_url}[/dim]", highlight=False)  # fmt: skip
                steps = _run_steps(hub, examples, finance, partner, None if as_json else console)
            finance_json = _finance_json(finance, published)
            partner_json = _partner_json(partner)
            if not as_json:
                _print_partner(console, partner, config.hub.id, partner_json, finance_json)
    output: dict[str, object] = {"steps": steps, "finance_isac_taxii": finance_json, "partner_hub": partner_json}
    if as_json:
        sys.stdout.write(orjson.dumps(output).decode() + "\n")
    return output


def _run_steps(
    hub: EmbeddedHub, examples: Path, finance: TaxiiServer, partner: PartnerHub, console: Console | None
) -> list[dict[str, object]]:
    """Each step on the hub, with what Finance ISAC's server and the partner hub hold after it."""
    steps: list[dict[str, object]] = []
    for connector_id, location, title in STEPS:
        if connector_id == "approve":
            assert location is not None
            result = _approve_all(hub, hub.config, location)
            connector_id = location
        else:
            where = str(examples / location) if location else None
            result = _ingest(hub, hub.config, connector_id, where, examples)
        step = _step_json(connector_id, title, result)
        step["finance_isac_taxii_holds"] = len(content(finance.holdings()))
        step["partner_hub_received"] = len(content(partner.received))
        steps.append(step)
        if console is not None:
            console.rule(f"[bold]{title}[/bold]  ({connector_id})")
            report.print_run(console, result, hub.config)
            _print_peers(console, step, partner)
    return steps


def _finance_isac_collection(config: HubConfig) -> tuple[str, BasicAuth]:
    """The collection id and the hub's account on Finance ISAC's server, as examples/gateway.yaml names them."""
    community = config.community(FINANCE_ISAC)
    assert community is not None, FINANCE_ISAC
    channel = next(c for c in community.deliver if isinstance(c, TaxiiChannel))
    assert channel.taxii.auth is not None, "finance-isac's TAXII channel names its account"
    return channel.taxii.collection, channel.taxii.auth


def _print_peers(console: Console, step: dict[str, object], partner: PartnerHub) -> None:
    bundles = f"{partner.bundles} signed bundle{'s' if partner.bundles != 1 else ''}"
    refused = f", {len(partner.refused)} refused" if partner.refused else ""
    console.print(
        f"Finance ISAC's TAXII server holds {step['finance_isac_taxii_holds']} objects; partner hub: "
        f"{step['partner_hub_received']} received in {bundles} (verified){refused}",
        highlight=False,
    )


def _print_partner(
    console: Console, partner: PartnerHub, sender: str, partner_json: dict[str, Any], finance: dict[str, Any]
) -> None:
    config = partner.hub.config
    console.rule(f"[bold]At the partner hub abroad ({config.hub.id}, a second Renkei hub)[/bold]")
    console.print(
        f"its peer inbox verified {partner.bundles} signed bundles from {sender}: "
        f"{partner_json['summary']['objects']} objects, routed on with the TLP and scope each one carries",
        highlight=False,
    )
    report.print_run(console, partner.result, config)
    amber = {o["id"] for o in partner_json["received"] if o["tlp"] in ("AMBER", "AMBER+STRICT")}
    reached = {c for c, objects in partner_json["delivered"].items() if amber & {o["id"] for o in objects}}
    console.print(
        f"{len(amber)} AMBER object(s) reached the partner hub (its sender shared with `all`) and "
        f"{len(reached)} of its communities: only the sender can name who sees AMBER",
        highlight=False,
    )
    console.print(
        f"Finance ISAC's TAXII server holds {finance['holds']} objects (read back with taxii2-client): "
        f"{finance['published']} it published, {finance['from_hub']} the hub routed to it",
        highlight=False,
    )


def _finance_json(finance: TaxiiServer, published: dict[str, Any]) -> dict[str, object]:
    own = {o["id"] for o in published["objects"]}
    held = content(finance.holdings())
    from_hub = [o for o in held if o["id"] not in own]
    return {
        "api_root": finance.api_root,
        "collection": finance.collection_id,
        "holds": len(held),
        "published": len(held) - len(from_hub),
        "from_hub": len(from_hub),
        "objects": [_brief(o) for o in from_hub],
    }


def _partner_json(partner: PartnerHub) -> dict[str, object]:
    withheld = [
        {"object": d.object, "destination": d.destination, "reason": d.reason}
        for d in partner.result.decisions
        if not d.allowed
    ]
    return {
        "hub": partner.hub.config.hub.id,
        "bundles_verified": partner.bundles,
        "refused": partner.refused,
        "received": [_brief(o) for o in content(partner.received)],
        "summary": partner.result.summary(),
        "withheld": withheld,
        "delivered": {c: [_brief(o) for o in content(objs)] for c, objs in partner.delivered().items()},
    }


def _brief(obj: dict[str, Any]) -> dict[str, object]:
    """What a test or a script checks of a delivered object: what, which version, its TLP, scope and CVSS."""
    brief: dict[str, object] = {"id": obj["id"], "type": obj.get("type"), "modified": obj.get("modified")}
    if "confidence" in obj:
        brief["confidence"] = obj["confidence"]
    brief["tlp"], brief["scope"] = tlp_of(obj), scope_of(obj)
    if obj.get("type") == "vulnerability":
        brief["cvss"] = cvss_base_score(obj)
    return brief


def _ingest(hub: EmbeddedHub, config: HubConfig, connector_id: str, location: str | None, base: Path) -> RunResult:
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
        "allowed": [
            {"object": d.object, "version": d.version, "destination": d.destination}
            for d in result.decisions
            if d.allowed
        ],
        "quarantined": [{"input": q.input_name, "reason": q.reason} for q in result.quarantined],
        "followups": result.followups,
    }
