"""taxii2-client's Collection with the credentials of a config, and HTTP failures sorted into retry or not."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from taxii2client.v21 import Collection

from gateway.errors import PermanentError, RetryableError
from schemas.config import BasicAuth

TIMEOUT_SECONDS = 30
RETRIES = 4
MAX_RETRY_AFTER_SECONDS = 30.0
T = TypeVar("T")


def collection(api_root: str, collection_id: str, auth: BasicAuth | None) -> Collection:
    url = f"{api_root.rstrip('/')}/collections/{collection_id}/"
    user = password = None
    if auth is not None:
        user, password = auth.username, os.environ.get(auth.password_env)
        if password is None:
            raise PermanentError(f"{auth.password_env} is not set (TAXII password of {auth.username!r})")
    return Collection(url, user=user, password=password)


def with_retries(call: Callable[[], T], what: str, sleep: Callable[[float], None] = time.sleep) -> T:
    """Retry 429 and 5xx with backoff (honouring Retry-After, bounded); anything else fails at once."""
    for attempt in range(RETRIES + 1):
        try:
            return call()
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status != 429 and status < 500:
                raise PermanentError(f"{what}: HTTP {status}") from None
            if attempt == RETRIES:
                raise RetryableError(f"{what}: HTTP {status} after {RETRIES} retries") from None
            sleep(_delay(exc.response, attempt))
        except (requests.ConnectionError, requests.Timeout) as exc:
            if attempt == RETRIES:
                raise RetryableError(f"{what}: {type(exc).__name__}") from None
            sleep(_delay(None, attempt))
    raise AssertionError("unreachable")


def _delay(response: Any, attempt: int) -> float:
    retry_after = response.headers.get("Retry-After") if response is not None else None
    if retry_after and retry_after.isdigit():
        return min(float(retry_after), MAX_RETRY_AFTER_SECONDS)
    return min(0.5 * 2**attempt, MAX_RETRY_AFTER_SECONDS)
