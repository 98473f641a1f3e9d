"""The `stix` connector's inputs: a bundle file, a folder of bundles, or a URL. I/O only; no parsing here."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gateway.stixjson import MAX_INPUT_BYTES

URL_TIMEOUT_SECONDS = 30
_SUFFIXES = (".json", ".stix", ".stix2")


class SourceError(OSError):
    """The input cannot be read at all (missing file, unreachable URL): a usage error, not quarantine."""


@dataclass(frozen=True)
class RawInput:
    name: str
    data: bytes


def read_inputs(source: str) -> Iterator[RawInput]:
    """Each input of a source, in a stable order. Oversized files are read only up to just past the cap."""
    if source.startswith(("http://", "https://")):
        yield _fetch(source)
        return
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _SUFFIXES)
        for file in files:
            yield RawInput(str(file), _read_capped(file))
    elif path.is_file():
        yield RawInput(str(path), _read_capped(path))
    else:
        raise SourceError(f"{source}: no such file or folder")


def _read_capped(path: Path) -> bytes:
    # Reading one byte past the cap is enough for the pipeline to refuse it, without holding 50 MB.
    with path.open("rb") as handle:
        return handle.read(MAX_INPUT_BYTES + 1)


def _fetch(url: str) -> RawInput:
    request = urllib.request.Request(url, headers={"Accept": "application/stix+json, application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=URL_TIMEOUT_SECONDS) as response:  # noqa: S310 (http/https only)
            return RawInput(url, response.read(MAX_INPUT_BYTES + 1))
    except (urllib.error.URLError, TimeoutError, ValueError) as exc:
        raise SourceError(f"{url}: {exc}") from exc
