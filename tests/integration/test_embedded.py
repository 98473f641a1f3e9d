"""The embedded AWS (moto's server on 127.0.0.1): what one run stores in `state_dir`, the next run finds."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import PermanentError
from gateway.model import Delivery, PendingItem, QuarantineRecord, VersionRecord
from local.embedded import EmbeddedAws

pytestmark = pytest.mark.integration

V1, V2 = "2026-11-01T00:00:00.000000Z", "2026-11-02T00:00:00.000000Z"


def record(version: str) -> VersionRecord:
    return VersionRecord(
        object_id="indicator--a",
        version=version,
        content_hash="h-" + version,
        tlp="AMBER",
        scope={"share_with": ["bank-b"], "exclude": []},
        connector="drop",
        sender_org="Bank A",
        recorded_at=version,
        decisions={"bank-b": (True, "tlp:amber:named")},
        body={"type": "indicator", "id": "indicator--a", "modified": version, "x_score": 0.5},
    )


PENDING = PendingItem("pending--1", "member", "Bank A", V1, V2, [{"type": "indicator"}], "mail.eml", ("hub-b",))


def test_state_and_blobs_survive_a_restart(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    # Given a run that stores a little of everything
    with EmbeddedAws(folder) as aws:
        aws.state.claim_versions([record(V1), record(V2)])
        aws.state.record_deliveries([Delivery("bank-b", "indicator--a", V2)])
        aws.state.put_pending(PENDING)
        aws.state.put_seal("anon-1", b"\x00\xffsealed")
        aws.state.put_cursor("feed", {"etag": "abc", "seen": 3})
        raw_ref = aws.blobs.put("raw/2026/11/01/abc", b"\x00raw input\xff")
        bad_ref = aws.blobs.put("quarantine/def", b"not json")
        quarantined = QuarantineRecord("quarantine--1", "json:invalid", "d", "drop", "x.json", bad_ref, V1)
        aws.state.add_quarantine(quarantined)
        first = aws.table_name("state")
    # When the next run starts on the same folder
    with EmbeddedAws(folder) as aws:
        # Then it is a new moto, holding what the folder held
        assert aws.table_name("state") != first
        assert aws.state.latest(["indicator--a"]) == {"indicator--a": record(V2)}
        assert [r.version for r in aws.state.history("indicator--a")] == [V1, V2]
        assert aws.state.delivered([("bank-b", "indicator--a")]) == {("bank-b", "indicator--a"): V2}
        assert aws.state.pending() == [PENDING]
        assert aws.state.get_seal("anon-1") == b"\x00\xffsealed"
        assert aws.state.get_cursor("feed") == {"etag": "abc", "seen": 3}
        assert aws.state.quarantined() == [quarantined]
        # and references stored in the first run still lead to the bytes
        assert aws.blobs.get(raw_ref) == b"\x00raw input\xff"
        assert aws.blobs.get(quarantined.raw_ref) == b"not json"
        with pytest.raises(PermanentError):
            aws.blobs.get("s3://raw/2026/11/01/never-stored")
        # and a claim made now is a duplicate of the first run's
        assert [r.version for r in aws.state.claim_versions([record(V1)])] == [V1]
        assert aws.state.take_pending("pending--1") == PENDING
    # And what the second run changed is saved too
    with EmbeddedAws(folder) as aws:
        assert aws.state.pending() == []
        assert aws.state.latest(["indicator--a"])["indicator--a"].version == V2


def test_two_embedded_hubs_in_one_process_do_not_share_state() -> None:
    # moto's backends are global to the process: each hub must keep to its own tables and buckets
    with EmbeddedAws() as one, EmbeddedAws() as other:
        one.state.claim_versions([record(V1)])
        ref = one.blobs.put("raw/x", b"one")
        assert other.state.latest(["indicator--a"]) == {}
        assert other.state.claim_versions([record(V1)]) == []
        assert one.blobs.get(ref) == b"one"


def test_without_a_folder_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with EmbeddedAws() as aws:
        aws.state.claim_versions([record(V1)])
    assert list(tmp_path.iterdir()) == []
