"""The SNS topic every alarm notifies: operators subscribe to it (output `AlarmTopicArn`)."""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct


class Alerts(Construct):
    """An encrypted, TLS-only alarm topic that only this account's CloudWatch alarms may publish to."""

    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        # Alarm texts name queues and counts, not intel, but the key also keeps the topic policy uniform.
        self.topic = sns.Topic(self, "Topic", display_name="Renkei alarms", master_key=key, enforce_ssl=True)
        # enforce_ssl writes a topic policy, which replaces SNS's default one: allow the alarms explicitly.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowThisAccountsAlarms",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:*"
                    }
                },
            )
        )
