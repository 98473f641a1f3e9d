"""Deployment settings of the CDK app: retention, alarm thresholds, queue timing; read from context `renkei`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.tables import DEFAULT_PREFIX


class StackSettings(BaseModel):
    """What an operator may tune per deployment (`cdk.json` context `renkei`, or `-c renkei='{...}'`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: str = Field(default=DEFAULT_PREFIX, pattern=r"^[a-z][a-z0-9-]{0,30}$")

    # Raw inputs are the evidence behind every routing decision: keep them past a yearly audit.
    raw_retention_days: int = Field(default=400, ge=1)
    # Quarantined inputs are rarely read after the first weeks, but a sender may ask why months later.
    quarantine_infrequent_access_after_days: int = Field(default=30, ge=30)  # S3's minimum for STANDARD_IA
    quarantine_retention_days: int = Field(default=1095, ge=1)
    access_log_retention_days: int = Field(default=400, ge=1)
    # Overwritten or deleted objects stay recoverable this long (all buckets are versioned).
    noncurrent_version_retention_days: int = Field(default=30, ge=1)

    max_receive_count: int = Field(default=5, ge=1, le=1000)
    # SQS advises at least six times the consumer's timeout; the functions will run for up to 60 s.
    visibility_timeout_seconds: int = Field(default=360, ge=0, le=43200)
    queue_retention_days: int = Field(default=4, ge=1, le=14)
    # The longest SQS allows: a dead letter is evidence that something was not delivered.
    dlq_retention_days: int = Field(default=14, ge=1, le=14)
    # Nothing should wait in a working queue this long; the pipeline answers in seconds.
    oldest_message_alarm_seconds: int = Field(default=900, ge=60)
    # Warn while there is still time to redrive, before SQS drops a dead letter at retention.
    dlq_oldest_message_alarm_days: int = Field(default=10, ge=1, le=13)

    # Functions. Python 3.14 is Lambda's newest runtime (cdk-nag L1 asks for the newest); the code runs on 3.11+.
    python_runtime: str = Field(default="3.14", pattern=r"^3\.1[1-9]$")
    function_memory_mb: int = Field(default=1024, ge=128, le=10240)
    # SQS consumers: the queues' visibility timeout is six times this (visibility_timeout_seconds).
    function_timeout_seconds: int = Field(default=60, ge=3, le=900)
    # The poller reads whole feeds and collections: it may run longer than a queue consumer.
    poller_timeout_seconds: int = Field(default=300, ge=3, le=900)
    router_batch_size: int = Field(default=2, ge=1, le=10)
    deliver_batch_size: int = Field(default=10, ge=1, le=10)
    log_retention_days: int = Field(default=400, ge=1)
    # A layer folder (with python/ inside) holding the third-party packages; built by `python -m infra.layer`.
    dependencies_layer: str = "build/lambda-layer"
    # API Gateway: steady requests per second and burst, for the whole stage (TAXII clients, peers, approvals).
    api_rate_limit: int = Field(default=50, ge=1)
    api_burst_limit: int = Field(default=100, ge=1)
    # Requests from one IP address per five minutes before WAF blocks it.
    api_requests_per_ip_per_5_minutes: int = Field(default=2000, ge=100)

    @model_validator(mode="after")
    def _consistent(self) -> StackSettings:
        if self.quarantine_retention_days <= self.quarantine_infrequent_access_after_days:
            raise ValueError("quarantine_retention_days must exceed quarantine_infrequent_access_after_days")
        if self.visibility_timeout_seconds < 6 * self.function_timeout_seconds:
            raise ValueError("visibility_timeout_seconds must be at least six times function_timeout_seconds")
        if self.dlq_oldest_message_alarm_days >= self.dlq_retention_days:
            raise ValueError("dlq_oldest_message_alarm_days must be below dlq_retention_days")
        return self

    @classmethod
    def from_context(cls, value: Any) -> StackSettings:
        """Settings from the `renkei` context value (a dict, a JSON string from `-c`, or None). Raises ValueError."""
        if value is None:
            return cls()
        if isinstance(value, str):
            return cls.model_validate_json(value)
        return cls.model_validate(value)
