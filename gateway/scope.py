"""Sharing scope across hops: it only ever narrows (intersect share_with, union exclude)."""

from __future__ import annotations

from typing import Any

from schemas.config import KindExclusion, Scope


def intersect(a: Scope, b: Scope) -> Scope:
    """The scope that both allow. `all` ∩ X = X; excludes add up, so a relay can never widen."""
    if a.shares_with_all:
        share_with = b.share_with
    elif b.shares_with_all:
        share_with = a.share_with
    else:
        allowed = set(b.share_with)
        share_with = [i for i in a.share_with if i in allowed]
    return Scope(share_with=share_with, exclude=_union_excludes(a, b))


def _union_excludes(a: Scope, b: Scope) -> list[str | KindExclusion]:
    ids = sorted(a.excluded_ids | b.excluded_ids)
    kinds = sorted(a.excluded_kinds | b.excluded_kinds)
    return [*ids, *(KindExclusion(kind=k) for k in kinds)]  # type: ignore[arg-type]


def is_within(narrower: Scope, wider: Scope) -> bool:
    """True when `narrower` reaches no destination that `wider` does not (used to spot a loosened version).

    Kinds of listed ids are not known here, so a kind that `wider` excludes must be excluded by `narrower` too.
    """
    if not narrower.excluded_kinds >= wider.excluded_kinds:
        return False
    if narrower.shares_with_all:
        return wider.shares_with_all and narrower.excluded_ids >= wider.excluded_ids
    reach = set(narrower.share_with) - narrower.excluded_ids
    allowed = reach if wider.shares_with_all else set(wider.share_with)
    return reach <= allowed and not (reach & wider.excluded_ids)


def to_json(scope: Scope) -> dict[str, Any]:
    """The form carried in the Renkei extension and stored in state: canonical, sorted."""
    share_with: str | list[str] = "all" if scope.shares_with_all else sorted(set(scope.share_with))
    exclude: list[Any] = [*sorted(scope.excluded_ids), *({"kind": k} for k in sorted(scope.excluded_kinds))]
    return {"share_with": share_with, "exclude": exclude}


def from_json(data: Any) -> Scope:
    """Read a carried scope. Raises pydantic.ValidationError on anything malformed."""
    return Scope.model_validate(data)
