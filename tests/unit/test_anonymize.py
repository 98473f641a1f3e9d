"""Anonymise: the sender, the reported mail's recipients and every `redact` value stay in the hub (rule 12)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import orjson
import pytest

from gateway.anonymize import REDACTED, Redactor, anonymize

_NS = uuid.UUID("9d3e2a10-6b4c-4f1e-8a7d-2c5b6e7f8091")
T0 = "2026-11-01T00:00:00.000Z"
HUB_ID = "identity--0f0e0d0c-0b0a-4908-8706-050403020100"
SENDER_NAME = "Canary Bank A"
REDACT = ["10.66.0.0/16", "fd12:3456::/32", "canary-bank-a.example", SENDER_NAME]


def sid(kind: str, name: str) -> str:
    return f"{kind}--{uuid.uuid5(_NS, name)}"


def sdo(kind: str, key: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "spec_version": "2.1",
        "id": sid(kind, key),
        "created": T0,
        "modified": T0,
        **extra,
    }


def sco(kind: str, value: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "spec_version": "2.1", "id": sid(kind, value), "value": value, **extra}


SENDER = sdo("identity", "sender", name=SENDER_NAME, identity_class="organization")


def indicator(name: str, pattern: str = "[domain-name:value = 'evil.example']", **extra: Any) -> dict[str, Any]:
    return sdo(
        "indicator",
        f"indicator {name}",
        name=name,
        pattern=pattern,
        pattern_type="stix",
        valid_from=T0,
        created_by_ref=SENDER["id"],
        **extra,
    )


def relationship(name: str, source: str, target: str) -> dict[str, Any]:
    return sdo("relationship", name, relationship_type="related-to", source_ref=source, target_ref=target)


def report(name: str, *refs: str) -> dict[str, Any]:
    return sdo("report", f"report {name}", name=name, published=T0, object_refs=list(refs), created_by_ref=SENDER["id"])


def run(*objects: dict[str, Any], redact: list[str] | None = None) -> tuple[list[Any], dict[str, str]]:
    outcome = anonymize(list(objects), Redactor(REDACT if redact is None else redact), HUB_ID, [SENDER_NAME])
    return outcome.objects, outcome.withheld


# --- Redactor -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("beacon to 10.66.1.2 every hour", f"beacon to {REDACTED} every hour"),
        ("10.66.255.255 and 10.67.0.1", f"{REDACTED} and 10.67.0.1"),
        ("http://10.66.1.2/login", f"http://{REDACTED}/login"),
        ("subnet 10.66.3.0/24", f"subnet {REDACTED}/24"),
        ("from fd12:3456::7 via 2001:db8::1", f"from {REDACTED} via 2001:db8::1"),
        ("[fd12:3456:0:1::9]:443", f"[{REDACTED}]:443"),
        ("198.51.100.7", "198.51.100.7"),
    ],
    ids=["ipv4", "ipv4-edge", "ipv4-in-url", "ipv4-cidr-text", "ipv6", "ipv6-bracketed", "public"],
)
def test_redactor_cidrs(text: str, expected: str) -> None:
    # Given / When / Then
    assert Redactor(REDACT).redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("canary-bank-a.example", REDACTED),
        ("mail.canary-bank-a.example", REDACTED),
        ("VPN.Corp.CANARY-BANK-A.example is down", f"{REDACTED} is down"),
        ("see evil.example", "see evil.example"),
    ],
    ids=["domain", "subdomain", "nested-subdomain-any-case", "other-domain"],
)
def test_redactor_domain_and_subdomains(text: str, expected: str) -> None:
    # Given / When / Then
    assert Redactor(REDACT).redact(text) == expected


def test_redactor_email_address_at_the_domain_loses_the_domain() -> None:
    # Given / When
    out = Redactor(REDACT).redact("reported by soc@canary-bank-a.example and x@mail.canary-bank-a.example")

    # Then
    assert "canary-bank-a" not in out
    assert out.count(REDACTED) == 2


def test_redactor_email_address_at_the_domain_is_redacted_whole() -> None:
    # Given / When
    out = Redactor(REDACT).redact("reported by taro.yamada@canary-bank-a.example today")

    # Then
    assert out == f"reported by {REDACTED} today"


@pytest.mark.parametrize("text", ["C2 was 10.66.1.2.", "http://10.66.1.2:8080/x", "fd12:3456::7."])
def test_redactor_ip_before_dot_or_port(text: str) -> None:
    # Given / When / Then
    assert "10.66.1.2" not in Redactor(REDACT).redact(text)
    assert "fd12:3456::7" not in Redactor(REDACT).redact(text)


def test_url_with_private_ip_and_port_is_withheld() -> None:
    # Given
    url = sco("url", "http://10.66.1.2:8080/owa")

    # When
    out, withheld = run(url)

    # Then
    assert out == [None]
    assert withheld == {url["id"]: "anonymize:private-value"}


def test_redactor_names_are_case_insensitive() -> None:
    # Given / When
    out = Redactor(["Canary Bank A"]).redact("CANARY BANK A and canary bank a and Canary Bank B")

    # Then
    assert out == f"{REDACTED} and {REDACTED} and Canary Bank B"


def test_redactor_prefers_the_longest_value() -> None:
    # Given two values, one inside the other
    redactor = Redactor(["Bank", "Bank A Holdings"])

    # When / Then
    assert redactor.redact("Bank A Holdings") == REDACTED


def test_redactor_without_values_is_falsy_and_changes_nothing() -> None:
    # Given / When
    redactor = Redactor(["", "  "])

    # Then
    assert bool(redactor) is False
    assert redactor.redact("10.66.1.2 canary-bank-a.example") == "10.66.1.2 canary-bank-a.example"
    assert bool(Redactor(["10.0.0.0/8"])) is True
    assert bool(Redactor(["x"])) is True


def test_redactor_touches_nested_values() -> None:
    # Given
    redactor = Redactor(REDACT)

    # When / Then
    assert redactor.touches({"a": [1, {"b": "host 10.66.0.9 seen"}]}) is True
    assert redactor.touches({"a": [1, {"b": "host 10.67.0.9 seen"}]}) is False
    assert redactor.touches(42) is False


# --- anonymize(): what is withheld ---------------------------------------------------------------------


def test_sender_identity_is_withheld_and_created_by_ref_becomes_the_hub() -> None:
    # Given the sender's identity and an indicator it authored
    ind = indicator("phish")

    # When
    out, withheld = run(SENDER, ind)

    # Then
    assert out[0] is None
    assert withheld[SENDER["id"]] == "anonymize:sender-identity"
    assert out[1]["created_by_ref"] == HUB_ID


def test_identity_with_the_sender_name_is_withheld_in_any_case() -> None:
    # Given an identity nobody refers to, but named like the sender
    other = sdo("identity", "alias", name=SENDER_NAME.upper(), identity_class="organization")

    # When
    out, withheld = run(other)

    # Then
    assert out == [None]
    assert withheld == {other["id"]: "anonymize:sender-identity"}


def test_third_party_identity_is_kept() -> None:
    # Given
    vendor = sdo("identity", "vendor", name="ACME Security", identity_class="organization")

    # When
    out, withheld = run(vendor)

    # Then
    assert out == [vendor]
    assert withheld == {}


def test_sco_with_private_value_is_withheld_and_public_one_kept() -> None:
    # Given
    internal = sco("ipv4-addr", "10.66.4.5")
    public = sco("ipv4-addr", "198.51.100.7")
    internal6 = sco("ipv6-addr", "fd12:3456::1")
    domain = sco("domain-name", "vpn.canary-bank-a.example")

    # When
    out, withheld = run(internal, public, internal6, domain)

    # Then
    assert out == [None, public, None, None]
    assert withheld == {
        internal["id"]: "anonymize:private-value",
        internal6["id"]: "anonymize:private-value",
        domain["id"]: "anonymize:private-value",
    }


def test_indicator_whose_pattern_names_a_private_value_is_withheld() -> None:
    # Given
    private = indicator("internal", pattern="[ipv4-addr:value = '10.66.7.7']")
    public = indicator("public", description=f"Seen by {SENDER_NAME} at 10.66.7.7 on mail.canary-bank-a.example")

    # When
    out, withheld = run(private, public)

    # Then
    assert out[0] is None
    assert withheld == {private["id"]: "anonymize:private-value"}
    assert out[1]["pattern"] == public["pattern"]
    assert out[1]["description"] == f"Seen by {REDACTED} at {REDACTED} on {REDACTED}"


def test_mail_recipients_are_withheld_and_dropped_from_the_message() -> None:
    # Given a reported phishing mail sent to two colleagues (addresses outside the redact list)
    attacker = sco("email-addr", "ceo@evil.example")
    to = sco("email-addr", "victim1@partner.example")
    cc = sco("email-addr", "victim2@partner.example")
    mail = {
        "type": "email-message",
        "spec_version": "2.1",
        "id": sid("email-message", "phish"),
        "is_multipart": False,
        "from_ref": attacker["id"],
        "to_refs": [to["id"]],
        "cc_refs": [cc["id"]],
        "subject": "Invoice overdue",
        "additional_header_fields": {"To": "victim1@partner.example", "CC": "x", "X-Mailer": "evil 1.0"},
    }

    # When
    out, withheld = run(attacker, to, cc, mail)

    # Then
    assert out[0] == attacker
    assert (out[1], out[2]) == (None, None)
    assert withheld == {to["id"]: "anonymize:mail-recipient", cc["id"]: "anonymize:mail-recipient"}
    assert out[3] == {
        "type": "email-message",
        "spec_version": "2.1",
        "id": mail["id"],
        "is_multipart": False,
        "from_ref": attacker["id"],
        "subject": "Invoice overdue",
        "additional_header_fields": {"X-Mailer": "evil 1.0"},
    }


def test_report_losing_all_its_refs_is_withheld() -> None:
    # Given a report about one internal address only
    internal = sco("ipv4-addr", "10.66.4.5")
    rep = report("internal only", internal["id"])

    # When
    out, withheld = run(internal, rep)

    # Then
    assert out == [None, None]
    assert withheld == {internal["id"]: "anonymize:private-value", rep["id"]: "anonymize:refers-to-private-object"}


def test_report_keeps_the_refs_that_remain() -> None:
    # Given
    internal = sco("ipv4-addr", "10.66.4.5")
    public = sco("ipv4-addr", "198.51.100.7")
    rep = report("mixed", internal["id"], public["id"])

    # When
    out, _ = run(internal, public, rep)

    # Then
    assert out[2]["object_refs"] == [public["id"]]
    assert out[2]["created_by_ref"] == HUB_ID


def test_relationship_to_a_withheld_object_is_withheld() -> None:
    # Given
    internal = sco("ipv4-addr", "10.66.4.5")
    malware = sdo("malware", "rat", name="RAT", is_family=True)
    rel = relationship("c2", malware["id"], internal["id"])

    # When
    out, withheld = run(internal, malware, rel)

    # Then
    assert out == [None, malware, None]
    assert withheld[rel["id"]] == "anonymize:refers-to-private-object"


def test_sighting_drops_the_sender_from_where_sighted_refs() -> None:
    # Given a sighting of an indicator, sighted at the sender
    ind = indicator("phish")
    sighting = sdo("sighting", "s", sighting_of_ref=ind["id"], where_sighted_refs=[SENDER["id"]], count=3)

    # When
    out, _ = run(SENDER, ind, sighting)

    # Then
    assert "where_sighted_refs" not in out[2]
    assert out[2]["sighting_of_ref"] == ind["id"]
    assert out[2]["count"] == 3


def test_container_listed_before_a_withheld_relationship_drops_it() -> None:
    # Given a report listed before the relationship that will be withheld (it points at an internal IP)
    internal = sco("ipv4-addr", "10.66.4.5")
    malware = sdo("malware", "rat", name="RAT", is_family=True)
    rel = relationship("c2", malware["id"], internal["id"])
    rep = report("campaign", rel["id"], malware["id"])

    # When
    out, withheld = run(rep, rel, internal, malware)

    # Then: the same as when the report comes last
    assert withheld[rel["id"]] == "anonymize:refers-to-private-object"
    assert out[0]["object_refs"] == [malware["id"]]


def test_anonymize_is_pure_and_keeps_the_order() -> None:
    # Given
    objects = [SENDER, indicator("a", description="at canary-bank-a.example"), sco("ipv4-addr", "10.66.0.1")]
    before = copy.deepcopy(objects)

    # When
    outcome = anonymize(objects, Redactor(REDACT), HUB_ID, [SENDER_NAME])

    # Then
    assert objects == before
    assert len(outcome.objects) == 3
    assert outcome.objects[1] is not None
    assert outcome.objects[1]["id"] == objects[1]["id"]


# --- canary: nothing private survives serialisation --------------------------------------------------------


def test_canary_no_private_value_in_the_serialised_output() -> None:
    # Given a bundle that plants the private values in every place they tend to hide
    attacker = sco("email-addr", "ceo@evil.example")
    victim = sco("email-addr", "canary-victim@partner.example")
    internal = sco("ipv4-addr", "10.66.4.5")
    mail = {
        "type": "email-message",
        "spec_version": "2.1",
        "id": sid("email-message", "phish"),
        "is_multipart": False,
        "from_ref": attacker["id"],
        "to_refs": [victim["id"]],
        "subject": "Invoice overdue",
        "additional_header_fields": {"Delivered-To": "canary-victim@partner.example"},
    }
    ind = indicator(
        "phish",
        description=f"Reported by {SENDER_NAME} (soc.canary-bank-a.example), host 10.66.4.5 and fd12:3456::9 hit",
        labels=["canary bank a"],
        external_references=[{"source_name": SENDER_NAME, "url": "https://intra.canary-bank-a.example/case/1"}],
    )
    rel = relationship("to-internal", ind["id"], internal["id"])
    rep = report(f"{SENDER_NAME} weekly", ind["id"], internal["id"], mail["id"])
    note = sdo("note", "n", content="ask soc@canary-bank-a.example", object_refs=[ind["id"]])

    # When
    out, _ = run(SENDER, attacker, victim, internal, mail, ind, rel, rep, note)
    text = orjson.dumps([o for o in out if o is not None]).decode().lower()

    # Then
    for canary in [
        "canary-bank-a",
        "canary bank a",
        "10.66.4.5",
        "fd12:3456::9",
        "canary-victim",
        SENDER["id"],
        victim["id"],
        internal["id"],
        rel["id"],
    ]:
        assert canary.lower() not in text, canary
    assert [o["id"] for o in out if o is not None] == [attacker["id"], mail["id"], ind["id"], rep["id"], note["id"]]
