"""SDK errors translated where they happen: throttling, 5xx and the network are retryable, the rest permanent."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from gateway.errors import PermanentError, RenkeiError, RetryableError

_RETRYABLE = frozenset(
    {
        "ProvisionedThroughputExceededException", "ThrottlingException", "Throttling", "RequestLimitExceeded",
        "InternalServerError", "InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout",
        "TransactionInProgressException", "TransactionConflictException", "LimitExceededException",
    }
)  # fmt: skip


def translate(exc: BotoCoreError | ClientError, operation: str) -> RenkeiError:
    """The Renkei error for an SDK error of `operation` (e.g. "s3 get_object"); raise it `from exc`."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _RETRYABLE or status >= 500:
            return RetryableError(f"{operation}: {code or status}")
        return PermanentError(f"{operation}: {code}")
    if isinstance(exc, ConnectionError | HTTPClientError):
        return RetryableError(f"{operation}: {type(exc).__name__}")
    return PermanentError(f"{operation}: {type(exc).__name__}")
