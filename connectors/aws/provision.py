"""Create the tables and buckets from their one definition (schemas.tables): for the embedded default and tests.

On AWS the CDK stack (infra/) creates the same resources from the same definitions.
"""

from __future__ import annotations

from typing import Any

from schemas.tables import ALL_TABLES, QUARANTINE_BUCKET, RAW_BUCKET, TableSpec


def create_table(client: Any, spec: TableSpec, name: str) -> None:
    attributes = {spec.partition_key, spec.sort_key} | {k for i in spec.indexes for k in (i.partition_key, i.sort_key)}
    kwargs: dict[str, Any] = {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)],
        "KeySchema": [
            {"AttributeName": spec.partition_key, "KeyType": "HASH"},
            {"AttributeName": spec.sort_key, "KeyType": "RANGE"},
        ],
    }
    if spec.indexes:
        kwargs["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": index.partition_key, "KeyType": "HASH"},
                    {"AttributeName": index.sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index in spec.indexes
        ]
    client.create_table(**kwargs)
    if spec.ttl_attribute:
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute}
        )


def create_tables(client: Any, prefix: str) -> dict[str, str]:
    """Every table of the hub; returns logical name -> physical name."""
    names = {}
    for spec in ALL_TABLES:
        names[spec.logical_name] = spec.physical_name(prefix)
        create_table(client, spec, names[spec.logical_name])
    return names


def create_buckets(client: Any, prefix: str) -> dict[str, str]:
    """The raw-input and quarantine buckets; returns logical name -> bucket name."""
    names = {}
    for logical in (RAW_BUCKET, QUARANTINE_BUCKET):
        names[logical] = f"{prefix}-{logical}"
        client.create_bucket(Bucket=names[logical])
    return names
