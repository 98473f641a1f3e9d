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
