"""CVE ids and dates in the form STIX wants (plain text from HTML: connectors.plaintext)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

CVE = re.compile(r"\bCVE-\d{4}-\d{4,7}\b", re.IGNORECASE)


def stix_time(value: str | None) -> str | None:
    """An RFC 3339 / ISO 8601 / RFC 822 date (or a bare date) as `YYYY-MM-DDTHH:MM:SS.sssZ`; None if unreadable."""
    if not value:
        return None
    value = value.strip()
    moment: datetime | None = None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
