"""TLP written in a subject line: `[TLP:AMBER]`, `TLP:AMBER+STRICT`, `TLP: GREEN`, TLP 1.0's WHITE. Stricter wins."""

from __future__ import annotations

import re

from schemas.tlp import Tlp

_TLP = re.compile(r"TLP\s*[:：]\s*(AMBER\s*\+\s*STRICT|CLEAR|WHITE|GREEN|AMBER|RED)\b", re.IGNORECASE)


def subject_tlp(subject: str) -> Tlp | None:
    levels = [Tlp.parse(re.sub(r"\s+", "", found).upper()) for found in _TLP.findall(subject)]
    return max(levels) if levels else None
