"""The feed connector as the hub runs it: files and URLs (a real HTTP server on 127.0.0.1), conditional GET, a
cursor that moves only after the intakes were handed over, real samples, and the pipeline end to end."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from stix2validator import ValidationOptions, validate_instance

from connectors.feed.source import FeedSource
from gateway.errors import SourceUnavailable
from gateway.intake import Intake, take
from gateway.memory import InMemoryBlobStore, InMemoryStateStore
from gateway.pipeline import Pipeline
from schemas.config import FeedConnector, HubConfig

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "feeds"
SAMPLES = ROOT / "tests" / "fixtures" / "feeds" / "feedparser"


def connector(source: str = "unused") -> FeedConnector:
    return FeedConnector(id="jvn", type="feed", source=source)


class Feeds(BaseHTTPRequestHandler):
    """Serves one feed with an ETag, answering 304 to a matching If-None-Match."""

    body = b""
    etag = '"v1"'
    requests: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        type(self).requests.append(dict(self.headers.items()))
        if self.headers.get("If-None-Match") == self.etag:
            self.send_response(304)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/rdf+xml")
        self.send_header("ETag", self.etag)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Feeds.body = (EXAMPLES / "jvn-rdf.xml").read_bytes()
    Feeds.etag = '"v1"'
    Feeds.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Feeds)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/jvndb.rdf"
    httpd.shutdown()


def test_a_url_is_polled_with_conditional_get_and_the_cursor_moves_after_the_handover(server: str) -> None:
    state = InMemoryStateStore()
    source = FeedSource(connector(server), state)
    reading = source.read(None)
    first = next(reading)
    assert state.get_cursor("feed:jvn") is None  # not before every intake was taken
    rest = list(reading)
    assert [i.name.rsplit("#", 1)[1] for i in [first, *rest]] == ["JVNDB-2026-019001", "JVNDB-2026-019002"]
    assert state.get_cursor("feed:jvn") == {"etag": '"v1"'}
    # Then the next poll asks with If-None-Match, and a 304 gives nothing
    assert list(source.read(None)) == []
    assert Feeds.requests[-1]["If-None-Match"] == '"v1"'
    # And a changed feed is read again
    Feeds.body, Feeds.etag = (EXAMPLES / "jvn-rdf-update.xml").read_bytes(), '"v2"'
    assert len(list(source.read(None))) == 2


def test_an_unreachable_url_or_missing_file_is_a_source_error_not_a_quarantine(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable):
        list(FeedSource(connector("http://127.0.0.1:9/none.rdf"), InMemoryStateStore()).read(None))
    with pytest.raises(SourceUnavailable):
        list(FeedSource(connector(str(tmp_path / "missing.rdf")), InMemoryStateStore()).read(None))


def test_every_real_sample_converts_to_valid_stix_or_is_refused_with_a_reason() -> None:
    outcomes: Counter[str] = Counter()
    invalid = []
    files = sorted(SAMPLES.rglob("*.xml"))
    for path in files:
        for intake in FeedSource(connector(str(path)), InMemoryStateStore()).read(None):
            if intake.refusal is not None:
                outcomes[intake.refusal.reason] += 1
                continue
            assert intake.objects
            outcomes["converted"] += 1
            for obj in intake.objects:
                result = validate_instance(obj, ValidationOptions(version="2.1"))
                if not result.is_valid:
                    invalid.append((path.name, obj["type"], [str(e) for e in result.errors][:1]))
    print(f"\n{len(files)} real feed samples: {dict(outcomes)}")
    assert not invalid, invalid[:5]
    # feedparser's samples test one feature each (mostly channels without items, items without dates or
    # links, broken XML): every one gets a clear outcome and nothing crashes; none is a dated advisory.
    known = {"converted", "feed:bad-item", "feed:no-date", "feed:unparseable", "feed:undecodable"}
    known |= {"feed:unknown-encoding", "feed:unknown-dialect", "xml:dtd"}
    assert len(files) == 150 and set(outcomes) <= known


def hub() -> tuple[Pipeline, dict[str, list[dict[str, Any]]], HubConfig]:
    config = HubConfig.model_validate(
        {
            "hub": {"id": "hub-a"},
            "communities": [
                {"id": "power-isac", "kind": "isac", "deliver": [{"pull": {}}]},
                {"id": "fin-isac", "kind": "isac", "deliver": [{"pull": {}}], "accepts": {"min_cvss": 7.0}},
            ],
            "connectors": [{"id": "jvn", "type": "feed", "source": "x", "tlp": "CLEAR"}],
        }
    )
    received: dict[str, list[dict[str, Any]]] = {}

    class Capture:
        def deliver(self, destination: str, bundle: dict[str, Any]) -> None:
            received.setdefault(destination, []).extend(bundle["objects"])

    clock = lambda: datetime(2026, 11, 23, tzinfo=UTC)  # noqa: E731
    pipeline = Pipeline(config, InMemoryStateStore(), InMemoryBlobStore(), Capture(), clock=clock, seal_key=b"k" * 32)
    return pipeline, received, config


def run(pipeline: Pipeline, config: HubConfig, intakes: list[Intake]) -> dict[str, Any]:
    total: Counter[str] = Counter()
    for intake in intakes:
        total.update({k: v for k, v in take(pipeline, config, "jvn", intake).summary().items() if isinstance(v, int)})
    return dict(total)


def test_an_updated_advisory_reaches_each_community_as_a_follow_up_with_what_changed() -> None:
    pipeline, received, config = hub()
    first = run(pipeline, config, list(FeedSource(connector(str(EXAMPLES / "jvn-rdf.xml")), pipeline.state).read(None)))
    assert first["objects"] == 4 and first["delivered"] == 4
    # min_cvss 7.0: the 4.3 vulnerability, and the report that refers to it, stay away from fin-isac
    assert {o["name"] for o in received["fin-isac"] if o["type"] == "vulnerability"} == {"CVE-2026-40001"}
    received.clear()
    update = list(FeedSource(connector(str(EXAMPLES / "jvn-rdf-update.xml")), pipeline.state).read(None))
    second = run(pipeline, config, update)
    assert second["duplicate"] == 2 and second["delivered"] == 2  # the unchanged advisory is a duplicate
    notes = [o["content"] for o in received["power-isac"] if o["type"] == "note"]
    assert any("x_cvss_base_score: 7.5 -> 9.1" in note for note in notes), notes
    for obj in received["power-isac"]:
        assert validate_instance(obj, ValidationOptions(version="2.1")).is_valid, obj["type"]
    assert "攻撃が確認されています" in orjson.dumps(received["power-isac"]).decode()
