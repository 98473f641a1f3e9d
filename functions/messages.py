"""What travels on the queues: envelopes (inputs to route) and delivery tasks (one bundle for one destination).

Bodies are JSON. A bundle too large for a queue message travels as an S3 reference (`bundle_ref`): SQS takes
at most 1 MiB and bills per 64 KB, a 10,000-indicator bundle is about 6.6 MB.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.errors import PermanentError

# Bundles above this travel by reference: well below SQS's 1 MiB, and cheap to bill (64 KB units).
INLINE_BUNDLE_BYTES = 192 * 1024


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvelopeMessage(_Message):
    """One raw input already stored in S3, for the router to run through its connector and the pipeline.

    Producers: the peer inbox and TAXII push of the API function, `gateway serve` for dropped files.
    """

    connector: str = Field(min_length=1, max_length=128)
    raw_ref: str = Field(pattern=r"^s3://[^/]+/.+")
    name: str = Field(default="", max_length=1024)  # for traces: where it came from
    hops: tuple[str, ...] = ()


class DeliveryTask(_Message):
    """One bundle for one destination, as routing made it; the deliverer checks the policy again before sending.

    `connector` and `member` (an e-mail member's `match`) say whose policy applies, so the deliverer can ask
    the current config for it: a sender's exclusions or a community's kind may have changed since routing.
    """

    destination: str = Field(min_length=1, max_length=128)
    bundle_id: str = Field(pattern=r"^bundle--[0-9a-f-]{36}$")
    connector: str = Field(min_length=1, max_length=128)
    member: str | None = None
    config_version: str = ""
    objects: int = Field(ge=0)
    bundle: dict[str, Any] | None = None
    bundle_ref: str | None = Field(default=None, pattern=r"^s3://[^/]+/.+")

    @model_validator(mode="after")
    def _one_bundle(self) -> DeliveryTask:
        if (self.bundle is None) == (self.bundle_ref is None):
            raise ValueError("exactly one of bundle and bundle_ref")
        return self


class PollRequest(_Message):
    """What a schedule sends the poller: `{"connector": ID}` (the input that `gateway onboard` and the stack set)."""

    model_config = ConfigDict(extra="ignore", frozen=True)  # EventBridge may add fields of its own

    connector: str = Field(min_length=1, max_length=128)

    @model_validator(mode="before")
    @classmethod
    def _from_detail(cls, data: Any) -> Any:
        # An EventBridge rule (rather than Scheduler) wraps the input in `detail`.
        if isinstance(data, dict) and "connector" not in data and isinstance(data.get("detail"), dict):
            return data["detail"]
        return data


Message = TypeVar("Message", bound=BaseModel)


def read_message(kind: type[Message], body: str, what: str) -> Message:
    """A queue message as `kind`. Raises PermanentError (retrying cannot help) naming only how many errors:
    pydantic's message quotes the input, which must stay out of logs and the dead-letter reason."""
    try:
        return kind.model_validate_json(body)
    except ValidationError as exc:
        raise PermanentError(f"not {what}: {exc.error_count()} errors") from None
