"""S3 buckets for raw inputs and quarantine, and the bucket that keeps their access logs."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.settings import StackSettings
from schemas.tables import QUARANTINE_BUCKET, RAW_BUCKET


def _housekeeping(settings: StackSettings) -> list[s3.LifecycleRule]:
    return [
        s3.LifecycleRule(
            id="noncurrent-versions",
            noncurrent_version_expiration=Duration.days(settings.noncurrent_version_retention_days),
            expired_object_delete_marker=True,
        ),
        s3.LifecycleRule(id="incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(7)),
    ]


class Storage(Construct):
    """Raw inputs (the evidence) and quarantine (inputs that failed), KMS-encrypted, versioned, TLS-only."""

    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey, settings: StackSettings) -> None:
        super().__init__(scope, construct_id)
        # S3 cannot deliver server access logs to an SSE-KMS bucket, so the log bucket uses SSE-S3.
        # cdk-nag's S1 exempts a bucket that other buckets log to, so it needs no access log of its own.
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=True,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire", expiration=Duration.days(settings.access_log_retention_days)),
                *_housekeeping(settings),
            ],
        )
        self.raw = self._bucket(
            RAW_BUCKET,
            key,
            [
                s3.LifecycleRule(id="expire", expiration=Duration.days(settings.raw_retention_days)),
                *_housekeeping(settings),
            ],
        )
        self.quarantine = self._bucket(
            QUARANTINE_BUCKET,
            key,
            [
                s3.LifecycleRule(
                    id="age-out",
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=Duration.days(settings.quarantine_infrequent_access_after_days),
                        )
                    ],
                    expiration=Duration.days(settings.quarantine_retention_days),
                ),
                *_housekeeping(settings),
            ],
        )

    def _bucket(self, name: str, key: kms.IKey, lifecycle_rules: list[s3.LifecycleRule]) -> s3.Bucket:
        return s3.Bucket(
            self,
            name.capitalize(),
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            # One data key per bucket and period instead of a KMS call per object: cheaper, same key.
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=True,
            removal_policy=RemovalPolicy.RETAIN,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=f"{name}/",
            lifecycle_rules=lifecycle_rules,
        )
