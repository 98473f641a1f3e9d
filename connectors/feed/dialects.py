"""Read a feed in any dialect the field uses: RSS 1.0/RDF (JPCERT/CC, JVN with `sec:`), RSS 2.0, Atom, and
JSON (CISA's Known Exploited Vulnerabilities catalog, JSON Feed). Each yields advisories, and the items it
could not read, so one malformed item never costs the rest of the feed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from xml.etree.ElementTree import Element, tostring

from connectors.feed.advisory import Advisory, BadItem, Cvss
from connectors.feed.text import CVE, stix_time
from connectors.feed.xmlsafe import XmlRefused, parse_xml
from connectors.plaintext import plain
from gateway.intake import Refusal

RSS1 = "{http://purl.org/rss/1.0/}"
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
DC = "{http://purl.org/dc/elements/1.1/}"
DCTERMS = "{http://purl.org/dc/terms/}"
# JVN's security module: `mod_sec/3.0/` in JVN's own feeds, plain `mod_sec/` in JVN iPedia's (jvndb_new.rdf).
SEC_NAMESPACES = ("{http://jvn.jp/rss/mod_sec/3.0/}", "{http://jvn.jp/rss/mod_sec/}")
ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"

Parsed = Advisory | BadItem


class FeedRefused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.detail)
        self.refusal = refusal


def read_feed(data: bytes, allow_internal_entities: bool = False) -> Iterator[Parsed]:
    """Advisories and bad items of a feed. Raises FeedRefused when the feed as a whole cannot be read."""
    head = data.lstrip()[:1]
    if head in (b"{", b"["):
        yield from _json(data)
        return
    try:
        root = parse_xml(data, allow_internal_entities)
    except XmlRefused as refused:
        raise FeedRefused(refused.refusal) from None
    if root.tag == f"{RDF}RDF":
        yield from _items(root.iter(f"{RSS1}item"), _rss1)
    elif root.tag == "rss":
        yield from _items(root.iter("item"), _rss2)
    elif root.tag == f"{ATOM}feed":
        yield from _items(root.iter(f"{ATOM}entry"), _atom)
    else:
        raise FeedRefused(Refusal("feed:unknown-dialect", f"not RSS, RDF, Atom or JSON (root element {root.tag!r})"))


def _items(items: Iterator[Element], read: Any) -> Iterator[Parsed]:
    for n, item in enumerate(items, start=1):
        raw = tostring(item, encoding="utf-8")
        try:
            advisory = read(item)
        except (ValueError, KeyError, TypeError) as exc:
            yield BadItem(f"item {n}", raw, "feed:bad-item", str(exc)[:200])
            continue
        yield replace(advisory, raw=raw)


def _text(item: Element, tag: str) -> str | None:
    found = item.find(tag)
    if found is None:
        return None
    # Atom's and RSS's HTML may be escaped text or inline XHTML: take all of it
    text = "".join(found.itertext()) if len(found) else (found.text or "")
    return text.strip() or None


def _title(title: str | None, summary: str, fallback: str | None) -> str:
    """Feeds leave titles out more often than one would think: the summary's first line, else the link."""
    if title:
        return title
    first_line = summary.split("\n", 1)[0][:120]
    return _need(first_line or fallback, "a title, a summary or a link")


def _sec(item: Element, name: str) -> list[Element]:
    """The item's `sec:<name>` elements, in whichever of JVN's namespaces the feed uses."""
    return [node for ns in SEC_NAMESPACES for node in item.iter(f"{ns}{name}")]


def _need(value: str | None, what: str) -> str:
    if not value:
        raise ValueError(f"item without {what}")
    return value


def _rss1(item: Element) -> Advisory:
    link = _text(item, f"{RSS1}link") or item.get(f"{RDF}about")
    identifier = next((n.text.strip() for n in _sec(item, "identifier") if n.text and n.text.strip()), None)
    summary = plain(_text(item, f"{RSS1}description") or _text(item, f"{CONTENT}encoded"))
    title = _title(plain(_text(item, f"{RSS1}title")), summary, link)
    issued = stix_time(_text(item, f"{DCTERMS}issued")) or stix_time(_text(item, f"{DC}date"))
    modified = stix_time(_text(item, f"{DCTERMS}modified")) or stix_time(_text(item, f"{DC}date"))
    cves: list[str] = []
    refs: list[tuple[str, str]] = []
    for ref in _sec(item, "references"):
        ref_id, source, url = ref.get("id", ""), (ref.get("source") or "").upper(), (ref.text or "").strip()
        if source == "CVE" or CVE.fullmatch(ref_id):
            cves.append(ref_id)
        elif url:
            refs.append((source or "reference", url))
    cvss = None
    for node in _sec(item, "cvss"):  # the newest CVSS version given wins
        score = node.get("score")
        if score:
            candidate = Cvss(float(score), node.get("severity"), node.get("vector"), node.get("version"))
            if cvss is None or (candidate.version or "") > (cvss.version or ""):
                cvss = candidate
    cpes = tuple((c.text or "").strip() for c in _sec(item, "cpe") if (c.text or "").strip())
    cves += CVE.findall(f"{title}\n{summary}")
    return Advisory(
        key=identifier or _need(link, "an identifier or a link"),
        title=title,
        summary=summary,
        published=issued,
        updated=modified,
        link=link,
        advisory_id=identifier,
        source_name="jvn" if identifier and identifier.startswith("JVN") else "feed",
        cves=_unique(cves),
        cvss=cvss,
        cpes=cpes,
        extra_refs=tuple(refs),
    )


def _rss2(item: Element) -> Advisory:
    link = _text(item, "link")
    guid = _text(item, "guid")
    summary = plain(_text(item, f"{CONTENT}encoded") or _text(item, "description"))
    title = _title(plain(_text(item, "title")), summary, link or guid)
    published = stix_time(_text(item, "pubDate")) or stix_time(_text(item, f"{DC}date"))
    updated = stix_time(_text(item, f"{DCTERMS}modified")) or published
    return Advisory(
        key=_need(guid or link, "a guid or a link"),
        title=title,
        summary=summary,
        published=published,
        updated=updated,
        link=link,
        advisory_id=guid if guid and guid != link else None,
        cves=_unique(CVE.findall(f"{title}\n{summary}")),
    )


def _atom(entry: Element) -> Advisory:
    link = next(
        (node.get("href") for node in entry.iter(f"{ATOM}link") if node.get("rel", "alternate") == "alternate"), None
    )
    summary = plain(_text(entry, f"{ATOM}summary") or _text(entry, f"{ATOM}content"))
    entry_id = _text(entry, f"{ATOM}id")
    title = _title(plain(_text(entry, f"{ATOM}title")), summary, link or entry_id)
    published = stix_time(_text(entry, f"{ATOM}published"))
    updated = stix_time(_text(entry, f"{ATOM}updated")) or published
    return Advisory(
        key=_need(entry_id or link, "an id or a link"),
        title=title,
        summary=summary,
        published=published or updated,
        updated=updated,
        link=link,
        advisory_id=entry_id,
        cves=_unique(CVE.findall(f"{title}\n{summary}")),
    )


def _json(data: bytes) -> Iterator[Parsed]:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise FeedRefused(Refusal("feed:unparseable", f"not JSON: {str(exc)[:120]}")) from None
    if isinstance(document, dict) and isinstance(document.get("vulnerabilities"), list):
        yield from _json_items(document["vulnerabilities"], _kev)
    elif isinstance(document, dict) and isinstance(document.get("items"), list):
        yield from _json_items(document["items"], _json_feed_item)
    else:
        raise FeedRefused(Refusal("feed:unknown-dialect", "JSON that is neither the KEV catalog nor a JSON Feed"))


def _json_items(items: list[Any], read: Any) -> Iterator[Parsed]:
    for n, item in enumerate(items, start=1):
        raw = json.dumps(item, ensure_ascii=False).encode()
        try:
            if not isinstance(item, dict):
                raise TypeError("item is not an object")
            advisory = read(item)
        except (ValueError, KeyError, TypeError) as exc:
            yield BadItem(f"item {n}", raw, "feed:bad-item", str(exc)[:200])
            continue
        yield replace(advisory, raw=raw)


def _kev(entry: dict[str, Any]) -> Advisory:
    cve = str(entry["cveID"])
    if not CVE.fullmatch(cve):
        raise ValueError(f"not a CVE id: {cve[:40]!r}")
    added = stix_time(str(entry.get("dateAdded") or "")) or None
    if added is None:
        raise ValueError("no dateAdded")
    name = entry.get("vulnerabilityName") or f"{entry.get('vendorProject', '')} {entry.get('product', '')}".strip()
    summary = plain(str(entry.get("shortDescription") or ""))
    notes = str(entry.get("notes") or "")
    ransomware = entry.get("knownRansomwareCampaignUse")
    if ransomware and ransomware != "Unknown":
        summary += f"\nKnown ransomware campaign use: {ransomware}"
    due = entry.get("dueDate")
    action = str(entry["requiredAction"]) if entry.get("requiredAction") else None
    if action and due:
        action += f" (due {due})"
    return Advisory(
        key=f"kev:{cve}",
        title=f"Known exploited: {cve} {name}".strip(),
        summary=summary,
        published=added,
        updated=added,
        link=f"https://www.cisa.gov/known-exploited-vulnerabilities-catalog?search_api_fulltext={cve}",
        advisory_id=None,  # a CVE id is no advisory id: STIX wants it under source_name "cve" (the CVE refs)
        source_name="cisa-kev",
        cves=(cve,),
        action=action,
        extra_refs=tuple(("reference", u) for u in notes.split() if u.startswith("https://"))[:10],
    )


def _json_feed_item(item: dict[str, Any]) -> Advisory:
    title = _need(str(item.get("title") or ""), "a title")
    link = item.get("url")
    summary = plain(str(item.get("content_text") or item.get("content_html") or item.get("summary") or ""))
    published = stix_time(item.get("date_published"))
    updated = stix_time(item.get("date_modified")) or published
    return Advisory(
        key=_need(str(item.get("id") or link or ""), "an id or a url"),
        title=title,
        summary=summary,
        published=published or updated,
        updated=updated,
        link=link,
        advisory_id=str(item["id"]) if item.get("id") else None,
        cves=_unique(CVE.findall(f"{title}\n{summary}")),
    )


def _unique(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.upper() for v in values))
