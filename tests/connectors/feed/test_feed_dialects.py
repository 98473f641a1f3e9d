"""Every dialect read into advisories and STIX: JVN's RDF with `sec:`, RSS 2.0, Atom, KEV and JSON Feed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stix2validator import ValidationOptions, validate_instance

from connectors.feed.advisory import Advisory, BadItem
from connectors.feed.convert import to_stix, vulnerability_id
from connectors.feed.dialects import FeedRefused, read_feed

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "feeds"


def advisories(data: bytes) -> list[Advisory]:
    return [a for a in read_feed(data) if isinstance(a, Advisory)]


def assert_valid(objects: list[dict[str, object]]) -> None:
    for obj in objects:
        result = validate_instance(obj, ValidationOptions(version="2.1"))
        assert result.is_valid, (obj["type"], [str(e) for e in result.errors])


def test_jvn_rdf_gives_the_advisory_id_cves_cvss_and_japanese_text_intact() -> None:
    first, second = advisories((EXAMPLES / "jvn-rdf.xml").read_bytes())
    assert first.advisory_id == "JVNDB-2026-019001" and first.cves == ("CVE-2026-40001",)
    assert first.cvss is not None and first.cvss.score == 7.5 and first.cvss.severity == "High"
    assert first.title == "Examplesoft 製 FieldLink ゲートウェイにおける認証回避の脆弱性"
    # HTML in the description became text, a paragraph a line
    assert first.summary.splitlines()[0] == "Examplesoft 製 FieldLink ゲートウェイには、認証回避の脆弱性が存在します。"
    assert "<p>" not in first.summary
    assert first.published == "2026-11-20T01:00:00.000Z"  # +09:00 to UTC
    assert second.cvss is not None and second.cvss.score == 4.3


# The shapes of JVN iPedia's own feed (jvndb_new.rdf): `sec:` in the namespace without `3.0/`, times in minutes,
# CVSS v2 and v3 side by side, the CVE referenced by both CVE and NVD, a CWE reference. Written for this test.
IPEDIA = """<?xml version="1.0" encoding="UTF-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
  xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/"
  xmlns:sec="http://jvn.jp/rss/mod_sec/" xml:lang="ja">
  <channel rdf:about="https://jvndb.jvn.jp/ja/rss/jvndb_new.rdf"><title>JVNDB</title><link>https://jvndb.jvn.jp/</link>
    <description>JVN iPedia</description></channel>
  <item rdf:about="https://jvndb.jvn.jp/ja/contents/2026/JVNDB-2026-020001.html">
    <title>Example Router における OS コマンドインジェクションの脆弱性</title>
    <link>https://jvndb.jvn.jp/ja/contents/2026/JVNDB-2026-020001.html</link>
    <description>Example Router には、OS コマンドインジェクションの脆弱性が存在します。</description>
    <sec:identifier>JVNDB-2026-020001</sec:identifier>
    <sec:references source="CVE" id="CVE-2026-41234">https://www.cve.org/CVERecord?id=CVE-2026-41234</sec:references>
    <sec:references source="NVD" id="CVE-2026-41234">https://nvd.nist.gov/vuln/detail/CVE-2026-41234</sec:references>
    <sec:references title="OS コマンドインジェクション(CWE-78)" id="CWE-78"
      >https://cwe.mitre.org/data/definitions/78.html</sec:references>
    <sec:cpe version="2.2" vendor="Example" product="Router">cpe:/h:example:router</sec:cpe>
    <sec:cvss version="2.0" score="10.0" type="Base" severity="High" vector="AV:N/AC:L/Au:N/C:C/I:C/A:C"/>
    <sec:cvss version="3.0" score="9.8" type="Base" severity="Critical"
      vector="CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"/>
    <dc:date>2026-11-21T11:52+09:00</dc:date>
    <dcterms:issued>2026-11-21T11:52+09:00</dcterms:issued>
    <dcterms:modified>2026-11-21T11:52+09:00</dcterms:modified>
  </item>
</rdf:RDF>
"""


def test_jvn_ipedias_feed_shapes_give_the_cve_the_newest_cvss_and_times_in_minutes() -> None:
    [advisory] = advisories(IPEDIA.encode())
    assert advisory.advisory_id == "JVNDB-2026-020001" and advisory.cves == ("CVE-2026-41234",)
    assert advisory.cvss is not None and (advisory.cvss.score, advisory.cvss.version) == (9.8, "3.0")
    assert advisory.published == "2026-11-21T02:52:00.000Z"
    objects = to_stix(advisory)
    [vulnerability] = [o for o in objects if o["type"] == "vulnerability"]
    assert vulnerability["name"] == "CVE-2026-41234" and vulnerability["x_cvss_base_score"] == 9.8
    assert_valid(objects)


def test_an_advisory_becomes_a_report_with_its_vulnerabilities_all_valid_stix() -> None:
    advisory = advisories((EXAMPLES / "jvn-rdf.xml").read_bytes())[0]
    objects = to_stix(advisory)
    report, vulnerability = objects
    assert report["type"] == "report" and report["object_refs"] == [vulnerability["id"]]
    assert {"source_name": "cve", "external_id": "CVE-2026-40001"} in vulnerability["external_references"]
    assert vulnerability["x_cvss_base_score"] == 7.5
    assert report["external_references"][0] == {
        "source_name": "jvn",
        "external_id": "JVNDB-2026-019001",
        "url": "https://jvndb.jvn.example/ja/contents/2026/JVNDB-2026-019001.html",
    }
    assert_valid(objects)


def test_ids_are_the_same_across_polls_and_feeds_and_an_update_moves_only_modified() -> None:
    old = to_stix(advisories((EXAMPLES / "jvn-rdf.xml").read_bytes())[0])
    new = to_stix(advisories((EXAMPLES / "jvn-rdf-update.xml").read_bytes())[0])
    assert [o["id"] for o in old] == [o["id"] for o in new]
    assert old[0]["created"] == new[0]["created"] and new[0]["modified"] > old[0]["modified"]
    assert new[1]["x_cvss_base_score"] == 9.1
    kev = [o for a in advisories((EXAMPLES / "kev.json").read_bytes()) for o in to_stix(a)]
    # The KEV entry for the same CVE is the same vulnerability object, created at the same time
    same = next(o for o in kev if o["id"] == vulnerability_id("CVE-2026-40001"))
    assert same["created"] == old[1]["created"]


def test_kev_required_action_becomes_a_course_of_action_that_mitigates_the_vulnerability() -> None:
    objects = to_stix(advisories((EXAMPLES / "kev.json").read_bytes())[0])
    action = next(o for o in objects if o["type"] == "course-of-action")
    relationship = next(o for o in objects if o["type"] == "relationship")
    assert (
        action["description"].startswith("Apply mitigations per vendor instructions")
        and "2026-12-12" in action["description"]
    )
    assert (relationship["source_ref"], relationship["relationship_type"], relationship["target_ref"]) == (
        action["id"],
        "mitigates",
        vulnerability_id("CVE-2026-40001"),
    )
    assert_valid(objects)


def test_rss2_atom_and_json_feed_items_with_cves_in_their_text() -> None:
    rss = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>CERT</title>
      <item><title>Alert: CVE-2026-1111 exploited</title><link>https://cert.example/a/1</link>
      <guid>cert-2026-1</guid><pubDate>Sat, 21 Nov 2026 09:00:00 GMT</pubDate>
      <description>&lt;b&gt;Patch&lt;/b&gt; now.</description></item></channel></rss>"""
    atom = b"""<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>x</title>
      <entry><title>Advisory</title><id>urn:x:1</id><updated>2026-11-21T09:00:00Z</updated>
      <link href="https://cert.example/b"/><summary>Fixes CVE-2026-2222 and cve-2026-3333.</summary></entry></feed>"""
    feed = json.dumps(
        {"version": "https://jsonfeed.org/version/1.1", "title": "t",
         "items": [{"id": "j1", "title": "Hello", "content_text": "CVE-2026-4444", "date_published": "2026-11-21"}]}
    ).encode()  # fmt: skip
    (r,) = advisories(rss)
    (a,) = advisories(atom)
    (j,) = advisories(feed)
    assert (r.key, r.cves, r.summary, r.published) == (
        "cert-2026-1",
        ("CVE-2026-1111",),
        "Patch now.",
        "2026-11-21T09:00:00.000Z",
    )
    assert (a.key, a.cves, a.link) == ("urn:x:1", ("CVE-2026-2222", "CVE-2026-3333"), "https://cert.example/b")
    assert (j.key, j.cves) == ("j1", ("CVE-2026-4444",))
    for advisory in (r, a, j):
        assert_valid(to_stix(advisory))


@pytest.mark.parametrize("encoding", ["utf-8", "shift_jis", "euc-jp"])
def test_japanese_survives_whatever_the_declared_encoding(encoding: str) -> None:
    title = "緊急：ＦｉｅｌｄＬｉｎｋ の脆弱性（認証回避）"
    text = f"""<?xml version="1.0" encoding="{encoding}"?>
<rss version="2.0"><channel><title>警報</title><item><title>{title}</title><guid>g1</guid>
<pubDate>Sat, 21 Nov 2026 09:00:00 +0900</pubDate><description>至急、更新してください。</description></item>
</channel></rss>"""
    (advisory,) = advisories(text.encode(encoding))
    assert advisory.title == title and advisory.summary == "至急、更新してください。"


def test_a_malformed_item_is_refused_alone() -> None:
    data = b"""<?xml version="1.0"?><rss version="2.0"><channel>
      <item><pubDate>Sat, 21 Nov 2026 09:00:00 GMT</pubDate><category>nothing to name it by</category></item>
      <item><title>Good</title><guid>2</guid><pubDate>Sat, 21 Nov 2026 09:00:00 GMT</pubDate></item>
    </channel></rss>"""
    bad, good = list(read_feed(data))
    assert isinstance(bad, BadItem) and bad.reason == "feed:bad-item" and b"nothing to name it by" in bad.raw
    assert isinstance(good, Advisory) and good.title == "Good"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]><r>&b;</r>',
            "xml:dtd",
        ),
        (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>', "xml:dtd"),
        (b'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "http://evil.example/rss.dtd"><rss/>', "xml:dtd"),
        (b"<rss><channel><item><title>unclosed</channel></rss>", "feed:unparseable"),
        (b'<?xml version="1.0" encoding="x-no-such"?><rss/>', "feed:unknown-encoding"),
        (b"<html><body>not a feed</body></html>", "feed:unknown-dialect"),
        (b"{not json", "feed:unparseable"),
        (b'{"something": "else"}', "feed:unknown-dialect"),
    ],
)
def test_hostile_or_unreadable_feeds_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(FeedRefused) as refused:
        list(read_feed(data))
    assert refused.value.refusal.reason == reason


def test_internal_entities_only_when_the_connector_allows_them_and_never_external_ones() -> None:
    internal = b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY org "JPCERT">]><rss version="2.0"><channel>' + (
        b"<item><title>&org; alert</title><guid>1</guid><pubDate>Sat, 21 Nov 2026 09:00:00 GMT</pubDate></item>"
        b"</channel></rss>"
    )
    (advisory,) = [a for a in read_feed(internal, allow_internal_entities=True) if isinstance(a, Advisory)]
    assert advisory.title == "JPCERT alert"
    external = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    with pytest.raises(FeedRefused) as refused:
        list(read_feed(external, allow_internal_entities=True))
    assert refused.value.refusal.reason == "xml:external-reference"
