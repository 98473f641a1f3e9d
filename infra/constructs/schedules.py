"""EventBridge Scheduler: a schedule group, the role schedules invoke the poller with, one schedule per poller.

The schedules are those of the config the stack is deployed with. `gateway onboard --aws` keeps them in step
with the registry afterwards (connectors/aws/schedules.py): it finds this group and role by the stack's
outputs, and recognises these schedules by name, target and input, which are built here exactly as it builds
them. (infra imports no runtime code: tests/infra checks that both agree with gateway.onboarding.)
"""

from __future__ import annotations

import hashlib
import json
import math

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from schemas.config import (
    EmailConnector,
    FeedConnector,
    HubConfig,
    StixConnector,
    TaxiiConnector,
    parse_duration,
)

SCHEDULE_PREFIX = "renkei"  # connectors/aws/schedules.py: SchedulerSync's default prefix
_MAX_NAME = 64
DEFAULT_EVERY = {"feed": "15m", "taxii": "5m", "email": "15m", "stix": "15m"}


def polling(config: HubConfig) -> dict[str, str]:
    """Connector id -> `every`, for each connector that fetches on a schedule (as gateway.onboarding.polls)."""
    out = {}
    for c in config.connectors:
        polls = (
            isinstance(c, FeedConnector)
            or (isinstance(c, TaxiiConnector) and c.direction in ("pull", "both"))
            or (isinstance(c, EmailConnector) and c.source is not None)
            or (isinstance(c, StixConnector) and (c.source or "").startswith(("http://", "https://")))
        )
        if polls:
            out[c.id] = c.every or DEFAULT_EVERY.get(c.type, "15m")
    return out


def rate(every: str) -> str:
    """`rate(15 minutes)`: whole minutes at least, in the largest unit that divides them."""
    minutes = max(1, math.ceil(parse_duration(every).total_seconds() / 60))
    for size, unit in ((1440, "day"), (60, "hour"), (1, "minute")):
        if minutes % size == 0:
            count = minutes // size
            return f"rate({count} {unit}{'' if count == 1 else 's'})"
    raise AssertionError("unreachable")


def schedule_name(connector_id: str) -> str:
    name = f"{SCHEDULE_PREFIX}-{connector_id}"
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(connector_id.encode()).hexdigest()[:8]
    return f"{name[: _MAX_NAME - 9]}-{digest}"


def schedule_input(connector_id: str) -> str:
    """The poller's event, byte for byte as `onboard --aws` writes it (compact JSON)."""
    return json.dumps({"connector": connector_id}, separators=(",", ":"))


class Schedules(Construct):
    """`group_name`, `role` (assumed by Scheduler to invoke the poller) and `schedules[connector id]`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: HubConfig,
        poller: lambda_.IFunction,
        failures: sqs.IQueue,
        key: kms.IKey,
        prefix: str,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        group = scheduler.CfnScheduleGroup(self, "Group", name=f"{prefix}-{config.hub.id}"[:64])
        self.group_name = group.ref  # Ref of a schedule group is its name
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": stack.account}}
            ),
            description="Renkei: EventBridge Scheduler invokes the poller",
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[poller.function_arn]))
        self.role.add_to_policy(iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[failures.queue_arn]))
        # the dead-letter queue is encrypted with the data key
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn])
        )
        self.schedules: dict[str, scheduler.CfnSchedule] = {}
        for connector_id, every in polling(config).items():
            schedule = scheduler.CfnSchedule(
                self,
                f"Poll{hashlib.sha256(connector_id.encode()).hexdigest()[:12]}",
                name=schedule_name(connector_id),
                group_name=self.group_name,
                schedule_expression=rate(every),
                flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
                state="ENABLED",
                description=f"Renkei: poll connector {connector_id} every {every}",
                target=scheduler.CfnSchedule.TargetProperty(
                    arn=poller.function_arn,
                    role_arn=self.role.role_arn,
                    input=schedule_input(connector_id),
                    # A poll that fails is not worth repeating for long: the next one comes at the next rate.
                    retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                        maximum_event_age_in_seconds=900, maximum_retry_attempts=2
                    ),
                    dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(arn=failures.queue_arn),
                ),
            )
            self.schedules[connector_id] = schedule
