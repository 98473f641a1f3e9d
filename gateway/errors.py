"""Errors the core and its adapters raise: retryable (a later try may succeed) or permanent (quarantine)."""


class RenkeiError(Exception):
    """Base of every error Renkei raises on purpose."""


class RetryableError(RenkeiError):
    """A transient failure (throttling, a 5xx, a timeout): retry with backoff."""


class PermanentError(RenkeiError):
    """Retrying cannot help: the input or delivery goes to quarantine with the reason."""


class ConflictError(RenkeiError):
    """Someone else applied a change to the registry meanwhile: read it again, and decide again."""


class NotOnboarded(RenkeiError):
    """The registry holds no config yet: `gateway onboard` has not run."""


class PartialDelivery(RetryableError):
    """A channel delivered some objects of a bundle and not others (a TAXII status with failures).

    `failed` holds the STIX ids that did not arrive; the rest count as delivered and are never resent.
    """

    def __init__(self, message: str, failed: frozenset[str]) -> None:
        super().__init__(message)
        self.failed = failed


class SourceUnavailable(RenkeiError):
    """A connector's input cannot be read at all (missing file, unreachable URL): a usage error, not quarantine."""
