"""Sharing scope across hops: intersect narrows, is_within spots a wider scope, the JSON form round-trips."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gateway.scope import from_json, intersect, is_within, to_json
from schemas.config import KindExclusion, Scope


def scope(share_with: str | list[str] = "all", *exclude: str | dict[str, str]) -> Scope:
    return Scope.model_validate({"share_with": share_with, "exclude": list(exclude)})


# --- intersect --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (scope("all"), scope(["bank-b", "fsa"]), ["bank-b", "fsa"]),
        (scope(["bank-b", "fsa"]), scope("all"), ["bank-b", "fsa"]),
        (scope("all"), scope("all"), "all"),
        (scope(["a", "b", "c"]), scope(["c", "a", "z"]), ["a", "c"]),
        (scope(["a"]), scope(["b"]), []),
    ],
    ids=["all-and-names", "names-and-all", "all-and-all", "names-and-names", "disjoint"],
)
def test_intersect_share_with(a: Scope, b: Scope, expected: str | list[str]) -> None:
    # Given two scopes / When
    result = intersect(a, b)

    # Then
    assert result.share_with == expected


def test_intersect_adds_up_excludes_ids_and_kinds() -> None:
    # Given
    a = scope("all", "power-isac", {"kind": "regulator"})
    b = scope("all", "bank-b", "power-isac", {"kind": "vendor"}, {"kind": "regulator"})

    # When
    result = intersect(a, b)

    # Then
    assert result.exclude == ["bank-b", "power-isac", KindExclusion(kind="regulator"), KindExclusion(kind="vendor")]
    assert result.excluded_ids == frozenset({"bank-b", "power-isac"})
    assert result.excluded_kinds == frozenset({"regulator", "vendor"})


def test_intersect_never_widens_either_side() -> None:
    # Given
    a = scope(["finance-isac", "bank-b"], "fsa")
    b = scope("all", {"kind": "peer-hub"})

    # When
    result = intersect(a, b)

    # Then
    assert is_within(result, a) is True
    assert is_within(result, b) is True
    assert to_json(result) == {"share_with": ["bank-b", "finance-isac"], "exclude": ["fsa", {"kind": "peer-hub"}]}


# --- is_within ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("narrower", "wider", "expected"),
    [
        (scope(["a"]), scope(["a", "b"]), True),
        (scope(["a", "b"]), scope(["a"]), False),
        (scope(["a"]), scope("all"), True),
        (scope("all"), scope(["a"]), False),
        (scope("all"), scope("all"), True),
        (scope("all", "x"), scope("all"), True),
        (scope("all"), scope("all", "x"), False),
        (scope("all", {"kind": "regulator"}), scope("all"), True),
        (scope("all"), scope("all", {"kind": "regulator"}), False),
        (scope("all", "fsa"), scope("all", {"kind": "regulator"}), False),
        (scope([]), scope(["a"]), True),
    ],
    ids=[
        "fewer-names",
        "more-names",
        "names-in-all",
        "all-over-names",
        "all-in-all",
        "more-excludes",
        "lost-exclude",
        "more-kind-excludes",
        "lost-kind-exclude",
        "id-exclude-is-not-kind-exclude",
        "nobody",
    ],
)
def test_is_within(narrower: Scope, wider: Scope, expected: bool) -> None:
    # Given / When / Then
    assert is_within(narrower, wider) is expected


# --- JSON form ------------------------------------------------------------------------------------------


def test_to_json_is_canonical_and_sorted() -> None:
    # Given
    s = scope(["power-isac", "bank-b", "power-isac"], {"kind": "vendor"}, "zz", {"kind": "cert"}, "aa")

    # When
    data = to_json(s)

    # Then
    assert data == {
        "share_with": ["bank-b", "power-isac"],
        "exclude": ["aa", "zz", {"kind": "cert"}, {"kind": "vendor"}],
    }


def test_to_json_of_the_default_scope() -> None:
    # Given / When / Then
    assert to_json(Scope()) == {"share_with": "all", "exclude": []}


@pytest.mark.parametrize(
    "s",
    [Scope(), scope(["bank-b", "fsa"]), scope("all", "fsa", {"kind": "regulator"}), scope([], {"kind": "peer-hub"})],
    ids=["default", "names", "all-with-excludes", "nobody"],
)
def test_json_round_trip(s: Scope) -> None:
    # Given
    data = to_json(s)

    # When
    back = from_json(data)

    # Then
    assert to_json(back) == data
    assert back.excluded_ids == s.excluded_ids
    assert back.excluded_kinds == s.excluded_kinds
    assert back.shares_with_all == s.shares_with_all
    assert set(back.share_with) == set(s.share_with)


@pytest.mark.parametrize(
    "data",
    [
        {"share_with": "some"},
        {"share_with": ["bad id with spaces"]},
        {"exclude": [{"kind": "martian"}]},
        {"share_with": "all", "widen": True},
        "all",
        None,
    ],
    ids=["share-with-word", "bad-id", "unknown-kind", "extra-key", "string", "null"],
)
def test_from_json_refuses_malformed(data: Any) -> None:
    # Given / When / Then
    with pytest.raises(ValidationError):
        from_json(data)
