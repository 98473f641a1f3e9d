"""EventBridge Scheduler: a schedule group, the role schedules invoke the poller with, one schedule per poller.

The schedules are those of the config the stack is deployed with. `gateway onboard --aws` keeps them in step
with the registry afterwards (connectors/aws/schedules.py): it finds this group and role by the stack's
outputs, and recognises these schedules by name, target and input, which are built here exactly as it builds
them. (Both take the rules from schemas/schedules.py.)
"""

from __future__ import annotations

import hashlib
import json

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from schemas.config import HubConfig
from schemas.schedules import polling, rate_expression, schedule_name

EXPIRY_INPUT = json.dumps({"task": "expire-pending"}, separators=(",", ":"))


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
                schedule_expression=rate_expression(every),
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
        # Approvals that nobody gave expire: the poller drops them and tells each member. In the default group,
        # so that `onboard --aws`, which owns the poll schedules of this stack's group, never deletes it.
        self.expiry = scheduler.CfnSchedule(
            self,
            "ExpirePending",
            name=f"{prefix}-{config.hub.id}-expire-pending"[:64],
            schedule_expression="rate(15 minutes)",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED",
            description="Renkei: expire pending inputs past their approval deadline and tell their senders",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=poller.function_arn,
                role_arn=self.role.role_arn,
                input=EXPIRY_INPUT,
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_event_age_in_seconds=900, maximum_retry_attempts=2
                ),
                dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(arn=failures.queue_arn),
            ),
        )
