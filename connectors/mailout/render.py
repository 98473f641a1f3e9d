"""A delivery as a mail a person reads at a glance: `[TLP:GREEN] Renkei: 3 new, 1 update`, a short plain-text
list (titles, severity, what changed, the source) with everything clickable defanged, and the STIX bundle
attached as `application/stix+json;version=2.1`."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import orjson

from connectors.mailout.defang import defang
from gateway.normalize import RENKEI_EXTENSION_ID
from gateway.tlp import TLP2_IDS
from schemas.tlp import Tlp

_SKIP = {"marking-definition", "extension-definition", "identity"}
_TLP_BY_ID = {marking_id: level for level, marking_id in TLP2_IDS.items()}


def render(bundle: dict[str, Any], hub_name: str, sender_address: str, to: list[str]) -> EmailMessage:
    objects = [o for o in bundle["objects"] if o.get("type") not in _SKIP]
    notes = [o for o in objects if o.get("type") == "note" and _is_change_note(o)]
    updated = {ref for note in notes for ref in note.get("object_refs", [])}
    content = [o for o in objects if o not in notes]
    tlp = max((_tlp(o) for o in content), default=Tlp.CLEAR)
    new = len([o for o in content if o["id"] not in updated])
    summary = f"{new} new" + (f", {len(updated)} update{'s' if len(updated) != 1 else ''}" if updated else "")
    message = EmailMessage()
    message["Subject"] = f"[TLP:{tlp.label}] Renkei: {summary}"
    message["From"] = sender_address
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender_address.rsplit("@", 1)[-1])
    message.set_content(defang(_body(content, notes, tlp, hub_name)), charset="utf-8")
    data = orjson.dumps(bundle, option=orjson.OPT_INDENT_2)
    message.add_attachment(data, maintype="application", subtype="stix+json", filename="bundle.json",
                           params={"version": "2.1"})  # fmt: skip
    return message


def _body(content: list[dict[str, Any]], notes: list[dict[str, Any]], tlp: Tlp, hub_name: str) -> str:
    lines = [f"TLP:{tlp.label}. Shared by {hub_name} under the senders' scope; the STIX bundle is attached.", ""]
    for obj in content:
        title = obj.get("name") or obj.get("pattern") or obj.get("value") or obj["id"]
        details = [obj["type"]]
        if "x_cvss_base_score" in obj:
            details.append(
                f"CVSS {obj['x_cvss_base_score']}"
                + (f" {obj['x_cvss_severity']}" if obj.get("x_cvss_severity") else "")
            )
        source = ((obj.get("extensions") or {}).get(RENKEI_EXTENSION_ID) or {}).get("source") or {}
        if source.get("org"):
            details.append(f"from {source['org']}")
        lines.append(f"- {str(title)[:200]} ({', '.join(details)})")
    if notes:
        lines += ["", "What changed:"]
        lines += [note.get("content", "") for note in notes]
    return "\n".join(lines) + "\n"


def _tlp(obj: dict[str, Any]) -> Tlp:
    levels = [_TLP_BY_ID[ref] for ref in obj.get("object_marking_refs", []) if ref in _TLP_BY_ID]
    return max(levels, default=Tlp.CLEAR)


def _is_change_note(note: dict[str, Any]) -> bool:
    return "x_renkei_changes" in note  # gateway.changes.change_note
