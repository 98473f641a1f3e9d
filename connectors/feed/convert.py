"""An advisory as STIX 2.1: a report, a vulnerability per CVE, a course of action when it says what to do, and
the relationships between them. Ids are uuid5 of what identifies each thing, so the same advisory or CVE from
two feeds or two polls is the same object, and a moved "updated" date is a new version of it."""

from __future__ import annotations

import uuid
from typing import Any

from connectors.feed.advisory import Advisory

# Renkei's namespace for feed-made ids (uuid5 of "renkei:feed")
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://renkei.invalid/ns/feed")


class NoDate(ValueError):
    """Without a date an advisory has no stable version: every poll would look like an update."""


def sid(kind: str, key: str) -> str:
    return f"{kind}--{uuid.uuid5(NAMESPACE, f'{kind}|{key}')}"


def vulnerability_id(cve: str) -> str:
    """Depends on the CVE id only: JVN's and KEV's entries for a CVE are one object."""
    return sid("vulnerability", cve.upper())


def to_stix(advisory: Advisory) -> list[dict[str, Any]]:
    published = advisory.published or advisory.updated
    if published is None:
        raise NoDate(f"{advisory.key}: no published or updated date")
    updated = max(advisory.updated or published, published)
    stamp = {"spec_version": "2.1", "created": published, "modified": updated}
    report_id = sid("report", advisory.key)
    objects: list[dict[str, Any]] = []
    refs: list[str] = []
    for cve in advisory.cves:
        # The same CVE from two feeds is one object, so `created` must not depend on the feed: the start of the
        # CVE's year (ids are assigned then at the earliest). An advisory that says something about the CVE
        # itself (its CVSS) makes a version dated by the advisory; one that only names it (KEV) makes the
        # earliest version, so it never replaces what a richer feed said.
        created = f"{cve[4:8]}-01-01T00:00:00.000Z"
        vulnerability: dict[str, Any] = {
            "type": "vulnerability",
            "id": vulnerability_id(cve),
            "spec_version": "2.1",
            "created": created,
            "modified": max(created, updated) if advisory.cvss is not None else created,
            "name": cve,
            "external_references": [{"source_name": "cve", "external_id": cve}],
        }
        if advisory.cvss is not None:
            # Read by routing's `min_cvss` (gateway.route.cvss_base_score)
            vulnerability["x_cvss_base_score"] = advisory.cvss.score
            if advisory.cvss.severity:
                vulnerability["x_cvss_severity"] = advisory.cvss.severity
            if advisory.cvss.vector:
                vulnerability["x_cvss_vector"] = advisory.cvss.vector
        objects.append(vulnerability)
        refs.append(vulnerability["id"])
    if advisory.action:
        action = {
            "type": "course-of-action",
            "id": sid("course-of-action", advisory.key),
            **stamp,
            "name": f"Action: {advisory.title}"[:250],
            "description": advisory.action,
        }
        objects.append(action)
        refs.append(action["id"])
        for vulnerability_ref in [r for r in refs if r.startswith("vulnerability--")]:
            objects.append(_relationship(action["id"], "mitigates", vulnerability_ref, stamp))
            refs.append(objects[-1]["id"])
    report: dict[str, Any] = {
        "type": "report",
        "id": report_id,
        **stamp,
        "name": advisory.title[:1000],
        "published": updated,
        "report_types": ["vulnerability"] if advisory.cves else ["threat-report"],
        "object_refs": refs or [report_id.replace("report--", "note--", 1)],
        "external_references": _references(advisory),
    }
    if advisory.summary:
        report["description"] = advisory.summary
    if not refs:
        # A report must refer to something: an advisory without CVEs refers to a note holding its text.
        objects.append(
            {
                "type": "note",
                "id": report["object_refs"][0],
                **stamp,
                "content": advisory.summary or advisory.title,
                "object_refs": [report_id],
            }
        )
    return [report, *objects]


def _relationship(source: str, kind: str, target: str, stamp: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "relationship",
        "id": sid("relationship", f"{source}|{kind}|{target}"),
        **stamp,
        "relationship_type": kind,
        "source_ref": source,
        "target_ref": target,
    }


def _references(advisory: Advisory) -> list[dict[str, str]]:
    first: dict[str, str] = {"source_name": advisory.source_name}
    if advisory.advisory_id:
        first["external_id"] = advisory.advisory_id
    if advisory.link:
        first["url"] = advisory.link
    if len(first) == 1:
        first["description"] = advisory.key
    refs = [first]
    refs += [{"source_name": "cve", "external_id": cve} for cve in advisory.cves]
    refs += [{"source_name": source.lower(), "url": url} for source, url in advisory.extra_refs]
    refs += [{"source_name": "cpe", "description": cpe} for cpe in advisory.cpes[:20]]
    return refs
