"""The `stix` connector's inputs: a bundle file, a folder of bundles, or a URL. I/O only; the pipeline parses."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from gateway.errors import SourceUnavailable
from gateway.intake import Intake
from gateway.stixjson import MAX_INPUT_BYTES
from schemas.config import StixConnector

URL_TIMEOUT_SECONDS = 30
_SUFFIXES = (".json", ".stix", ".stix2")


class StixSource:
    """Each bundle at a location becomes one intake whose raw bytes the pipeline reads as STIX."""

    def __init__(self, connector: StixConnector) -> None:
        self.connector = connector

    def read(self, location: str | None) -> Iterator[Intake]:
        location = location or self.connector.source
        if not location:
            raise SourceUnavailable(f"connector {self.connector.id!r} has no `source`: give {self.connector.id}=FILE")
        for name, data in read_inputs(location):
            yield Intake(name, data)


def read_inputs(source: str) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each input of a source, in a stable order. Files are read only up to just past the cap."""
    if source.startswith(("http://", "https://")):
        yield source, fetch(source, accept="application/stix+json, application/json")
        return
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _SUFFIXES)
        for file in files:
            yield str(file), read_capped(file)
    elif path.is_file():
        yield str(path), read_capped(path)
    else:
        raise SourceUnavailable(f"{source}: no such file or folder")


def read_capped(path: Path, cap: int = MAX_INPUT_BYTES) -> bytes:
    # Reading one byte past the cap is enough for the pipeline to refuse it, without holding 50 MB.
    with path.open("rb") as handle:
        return handle.read(cap + 1)


def fetch(url: str, accept: str, cap: int = MAX_INPUT_BYTES) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=URL_TIMEOUT_SECONDS) as response:  # noqa: S310 (http/https only)
            data: bytes = response.read(cap + 1)
            return data
    except (urllib.error.URLError, TimeoutError, ValueError) as exc:
        raise SourceUnavailable(f"{url}: {exc}") from exc
