"""The sealed mapping: a stable pseudonym per sender, and an identity only the hub's key can open."""

from __future__ import annotations

import re

import pytest
from cryptography.exceptions import InvalidTag

from gateway.model import SenderPolicy
from gateway.seal import Sealer

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def sender(connector: str = "mailbox", org: str = "Bank A", community: str | None = "finance-isac") -> SenderPolicy:
    return SenderPolicy(connector_id=connector, connector_type="email", org=org, community=community)


def test_seal_and_open_round_trip() -> None:
    # Given
    sealer = Sealer(KEY)

    # When
    token, sealed = sealer.seal(sender())
    identity = sealer.open(token, sealed)

    # Then
    assert identity == {"connector": "mailbox", "org": "Bank A", "community": "finance-isac", "reply_to": None}


def test_round_trip_without_community_and_with_non_ascii_org() -> None:
    # Given
    sealer = Sealer(KEY)
    who = sender(org="\u682a\u5f0f\u4f1a\u793e\u30ab\u30ca\u30ea\u30a2", community=None)

    # When
    token, sealed = sealer.seal(who)

    # Then
    assert sealer.open(token, sealed) == {"connector": "mailbox", "org": who.org, "community": None, "reply_to": None}


def test_pseudonym_shape_and_stability() -> None:
    # Given two sealers with the same key
    a, b = Sealer(KEY), Sealer(KEY)

    # When
    token = a.pseudonym(sender())

    # Then
    assert re.fullmatch(r"anon-[0-9a-f]{24}", token)
    assert b.pseudonym(sender()) == token
    assert a.seal(sender())[0] == token


def test_pseudonym_differs_per_sender() -> None:
    # Given
    sealer = Sealer(KEY)

    # When
    tokens = {
        sealer.pseudonym(sender()),
        sealer.pseudonym(sender(org="Bank B")),
        sealer.pseudonym(sender(connector="other-mailbox")),
    }

    # Then
    assert len(tokens) == 3


def test_pseudonym_differs_per_key() -> None:
    # Given / When / Then
    assert Sealer(KEY).pseudonym(sender()) != Sealer(OTHER_KEY).pseudonym(sender())


def test_pseudonym_does_not_contain_the_sender() -> None:
    # Given
    who = sender(org="Canary Bank A")

    # When
    token, sealed = Sealer(KEY).seal(who)

    # Then
    assert b"Canary" not in sealed
    assert "canary" not in token.lower()


def test_each_seal_is_fresh() -> None:
    # Given
    sealer = Sealer(KEY)

    # When
    first, second = sealer.seal(sender())[1], sealer.seal(sender())[1]

    # Then
    assert first != second
    assert sealer.open(sealer.pseudonym(sender()), first) == sealer.open(sealer.pseudonym(sender()), second)


def test_tampered_seal_is_refused() -> None:
    # Given
    sealer = Sealer(KEY)
    token, sealed = sealer.seal(sender())
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])

    # When / Then
    with pytest.raises(InvalidTag):
        sealer.open(token, tampered)


def test_tampered_nonce_is_refused() -> None:
    # Given
    sealer = Sealer(KEY)
    token, sealed = sealer.seal(sender())

    # When / Then
    with pytest.raises(InvalidTag):
        sealer.open(token, bytes([sealed[0] ^ 1]) + sealed[1:])


def test_seal_under_another_pseudonym_is_refused() -> None:
    # Given a seal moved to another sender's pseudonym
    sealer = Sealer(KEY)
    _, sealed = sealer.seal(sender())
    other_token = sealer.pseudonym(sender(org="Bank B"))

    # When / Then
    with pytest.raises(InvalidTag):
        sealer.open(other_token, sealed)


def test_seal_from_another_key_is_refused() -> None:
    # Given
    token, sealed = Sealer(OTHER_KEY).seal(sender())

    # When / Then
    with pytest.raises(InvalidTag):
        Sealer(KEY).open(token, sealed)


def test_short_key_is_refused() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Sealer(b"k" * 31)
