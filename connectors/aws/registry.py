"""The registry (gateway.ports.RegistryStore) on DynamoDB: the current config and one item per applied change.

`pk=config, sk=current` holds the config JSON and its version; `pk=history, sk=<version, zero-padded>`
one change record each. A change writes both in one transaction, conditional on the version it was
computed against, so no reader ever sees it half applied and two operators cannot both apply.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from botocore.exceptions import ClientError

from gateway.errors import ConflictError, RetryableError
from gateway.onboarding import ChangeRecord, config_from_json, config_json
from schemas.config import HubConfig

_CURRENT = {"pk": {"S": "config"}, "sk": {"S": "current"}}
_VERSION_DIGITS = 10  # sort keys sort as strings: padding keeps version 10 after version 9


def history_key(version: int) -> str:
    return f"{version:0{_VERSION_DIGITS}d}"


class DynamoRegistryStore:
    """Reads and applies the routing state. `client` is a boto3 DynamoDB client, built by the caller."""

    def __init__(self, table_name: str, client: Any) -> None:
        self._table = table_name
        self._client = client

    def current(self) -> tuple[int, HubConfig] | None:
        try:
            # Consistent: a reader right after `onboard` must not get the config before it.
            item = self._client.get_item(TableName=self._table, Key=_CURRENT, ConsistentRead=True).get("Item")
        except ClientError as exc:
            raise RetryableError(f"registry read failed: {_code(exc)}") from exc
        return None if item is None else current_from_item(item)

    def apply(self, config: HubConfig, expected_version: int | None, change: ChangeRecord) -> int:
        version = (expected_version or 0) + 1
        record = dataclasses.replace(change, version=version)
        current: dict[str, Any] = {
            "TableName": self._table,
            "Item": {
                **_CURRENT,
                "version": {"N": str(version)},
                "config": {"S": config_json(config)},
                "config_sha256": {"S": record.config_sha256},
                "applied_at": {"S": record.applied_at},
            },
        }
        if expected_version is None:
            current["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            current["ConditionExpression"] = "version = :expected"
            current["ExpressionAttributeValues"] = {":expected": {"N": str(expected_version)}}
        entry = {
            "TableName": self._table,
            "Item": {
                "pk": {"S": "history"},
                "sk": {"S": history_key(version)},
                "version": {"N": str(version)},
                "change": {"S": orjson.dumps(record.to_json()).decode()},
            },
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        try:
            self._client.transact_write_items(TransactItems=[{"Put": current}, {"Put": entry}])
        except ClientError as exc:
            if _conflict(exc):
                raise ConflictError(
                    f"the registry is no longer at version {expected_version}: someone applied a change meanwhile"
                ) from exc
            raise RetryableError(f"registry write failed: {_code(exc)}") from exc
        return version

    def history(self) -> list[ChangeRecord]:
        records: list[ChangeRecord] = []
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :history",
            "ExpressionAttributeValues": {":history": {"S": "history"}},
            "ConsistentRead": True,
        }
        while True:
            try:
                page = self._client.query(**request)
            except ClientError as exc:
                raise RetryableError(f"registry history read failed: {_code(exc)}") from exc
            records += [ChangeRecord.from_json(orjson.loads(item["change"]["S"])) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return records
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def is_current_item(item: dict[str, Any]) -> bool:
    """True for the item that holds the current config (for readers of a table dump, like the embedded state)."""
    return item.get("pk") == _CURRENT["pk"] and item.get("sk") == _CURRENT["sk"]


def current_from_item(item: dict[str, Any]) -> tuple[int, HubConfig]:
    """(version, config) from the current item, in DynamoDB's attribute-value form."""
    return int(item["version"]["N"]), config_from_json(item["config"]["S"])


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "unknown"))


def _conflict(exc: ClientError) -> bool:
    """A failed condition (someone else's version is there), as opposed to throttling or a transaction clash."""
    if _code(exc) == "ConditionalCheckFailedException":
        return True
    if _code(exc) != "TransactionCanceledException":
        return False
    reasons = exc.response.get("CancellationReasons") or []
    if reasons:
        return any(r.get("Code") == "ConditionalCheckFailed" for r in reasons)
    # Some SDK versions put the reasons only in the message.
    return "ConditionalCheckFailed" in str(exc.response.get("Error", {}).get("Message", ""))
