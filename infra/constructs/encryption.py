"""The customer-managed KMS key behind every table, bucket, queue and topic that holds intel."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct


class DataKey(Construct):
    """One rotating key: revoking it (or its grants) cuts every copy of the shared intel at once."""

    def __init__(self, scope: Construct, construct_id: str, *, prefix: str) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            alias=f"alias/{prefix}-data",
            description="Renkei: encrypts shared threat intel at rest (tables, buckets, queues, alarms)",
            enable_key_rotation=True,
            # A lost key makes every table backup and raw input unreadable: never delete it with the stack.
            removal_policy=RemovalPolicy.RETAIN,
            pending_window=Duration.days(30),
        )
        # CloudWatch alarms publish to the KMS-encrypted alarm topic; without this they fail silently.
        # "*" in a key policy means this key only.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublishEncrypted",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
            )
        )

    def allow_ses_to_store_mail(self, account: str) -> None:
        """SES's S3 action writes into the raw bucket, whose default encryption is this key."""
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowSesToStoreInboundMail",
                principals=[iam.ServicePrincipal("ses.amazonaws.com")],
                actions=["kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": account}},
            )
        )
