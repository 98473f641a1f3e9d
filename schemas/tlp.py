"""The TLP 2.0 scale as an ordered enum: CLEAR < GREEN < AMBER < AMBER+STRICT < RED."""

from __future__ import annotations

import re
from enum import IntEnum

_NAME = re.compile(r"^\s*(?:TLP\s*[:：]?\s*)?(CLEAR|WHITE|GREEN|AMBER\s*\+\s*STRICT|AMBER|RED)\s*$", re.IGNORECASE)


class Tlp(IntEnum):
    """Traffic Light Protocol 2.0 (FIRST, 2022). Higher is stricter."""

    CLEAR = 0
    GREEN = 1
    AMBER = 2
    AMBER_STRICT = 3
    RED = 4

    @property
    def label(self) -> str:
        """The FIRST spelling: CLEAR, GREEN, AMBER, AMBER+STRICT, RED."""
        return _LABELS[self]

    @classmethod
    def parse(cls, text: str) -> Tlp:
        """Read `CLEAR`, `tlp:amber+strict`, `TLP: GREEN`, `WHITE` (TLP 1.0, = CLEAR). Raises ValueError."""
        match = _NAME.match(text)
        if not match:
            raise ValueError(f"not a TLP level: {text!r}")
        word = re.sub(r"\s+", "", match.group(1)).upper()
        if word == "WHITE":
            return cls.CLEAR
        if word == "AMBER+STRICT":
            return cls.AMBER_STRICT
        return cls[word]

    @classmethod
    def try_parse(cls, text: object) -> Tlp | None:
        """Like parse, but None for anything that is not a TLP name."""
        if not isinstance(text, str):
            return None
        try:
            return cls.parse(text)
        except ValueError:
            return None


_LABELS = {level: ("AMBER+STRICT" if level is Tlp.AMBER_STRICT else level.name) for level in Tlp}
