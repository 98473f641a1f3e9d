"""DynamoDB tables built from `schemas.tables`, so the embedded default and AWS share one definition."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from schemas.tables import ALL_TABLES, TableSpec


def _key(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)


class StateTables(Construct):
    """Registry, state and objects tables: on-demand, PITR, KMS-encrypted, retained, deletion-protected."""

    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        self.tables: dict[str, dynamodb.Table] = {spec.logical_name: self._table(spec, key) for spec in ALL_TABLES}

    def _table(self, spec: TableSpec, key: kms.IKey) -> dynamodb.Table:
        # Physical names are left to CloudFormation so a replacement or a second hub never collides;
        # functions get them from the environment and `gateway onboard` from the stack outputs.
        table = dynamodb.Table(
            self,
            spec.logical_name.capitalize(),
            partition_key=_key(spec.partition_key),
            sort_key=_key(spec.sort_key),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            time_to_live_attribute=spec.ttl_attribute,
            # Dedupe state and the registry are what keep intel from being re-sent or mis-routed.
            removal_policy=RemovalPolicy.RETAIN,
            deletion_protection=True,
        )
        for index in spec.indexes:
            table.add_global_secondary_index(
                index_name=index.name,
                partition_key=_key(index.partition_key),
                sort_key=_key(index.sort_key),
                projection_type=dynamodb.ProjectionType.ALL,
            )
        return table
