"""Renkei's own TAXII 2.1 collections on DynamoDB: what routing allowed for each community with a `pull` channel.

One item per (collection, object id, version), with a `date_added_key` the by-date-added index sorts on,
so the TAXII server (a later issue) can page with an opaque cursor across stateless invocations.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from gateway.errors import RetryableError

_SKIP = frozenset({"marking-definition", "extension-definition"})
_BATCH = 25


class CollectionStore:
    """Adds objects to a community's collection (idempotent: the same id and version is stored once)."""

    def __init__(self, table_name: str, client: Any) -> None:
        self._table = table_name
        self._client = client
        self._serialize = TypeSerializer().serialize

    def add(self, collection: str, objects: list[dict[str, Any]]) -> None:
        added = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        items = []
        for obj in objects:
            version = str(obj.get("modified") or obj.get("created") or "")
            items.append(
                {
                    "pk": f"col#{collection}",
                    "sk": f"{obj['id']}#{version}",
                    "collection": collection,
                    "date_added_key": f"{added}#{obj['id']}#{version}",
                    "object_type": obj["type"],
                    "body": orjson.dumps(obj).decode(),
                    "is_definition": obj["type"] in _SKIP,
                }
            )
        for start in range(0, len(items), _BATCH):
            requests = [
                {"PutRequest": {"Item": {k: self._serialize(v) for k, v in item.items()}}}
                for item in items[start : start + _BATCH]
            ]
            self._write(requests)

    def _write(self, requests: list[dict[str, Any]]) -> None:
        pending = {self._table: requests}
        for _ in range(8):
            try:
                response = self._client.batch_write_item(RequestItems=pending)
            except ClientError as exc:
                raise RetryableError(f"collection write failed: {exc.response['Error']['Code']}") from exc
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                return
        raise RetryableError("collection write: items still unprocessed after retries")

    def objects(self, collection: str) -> list[dict[str, Any]]:
        """Every object in a collection (for tests and the demo; the TAXII server pages instead)."""
        out: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"col#{collection}"}},
        }
        while True:
            page = self._client.query(**kwargs)
            out += [orjson.loads(item["body"]["S"]) for item in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return out
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def page(
        self, collection: str, after: str | None, limit: int, types: frozenset[str] = frozenset()
    ) -> tuple[list[tuple[str, dict[str, Any]]], str | None, bool]:
        """Objects added after the `after` key, oldest first, from the by-date-added index: ([(date added,
        object)], the last key read, whether more follow). Stateless: the key is all a next page needs."""
        out: list[tuple[str, dict[str, Any]]] = []
        condition = "#c = :c"
        values: dict[str, Any] = {":c": {"S": collection}, ":no": {"BOOL": False}}
        if after:
            condition += " AND date_added_key > :after"
            values[":after"] = {"S": after}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "by-date-added",
            "KeyConditionExpression": condition,
            "FilterExpression": "is_definition = :no",
            "ExpressionAttributeNames": {"#c": "collection"},
            "ExpressionAttributeValues": values,
            "Limit": limit,
        }
        last: str | None = after
        for _ in range(20):  # a filter can leave a page short: read on, boundedly
            answer = self._client.query(**kwargs)
            for item in answer["Items"]:
                if len(out) == limit:
                    return out, last, True
                body = orjson.loads(item["body"]["S"])
                last = item["date_added_key"]["S"]
                if not types or body.get("type") in types:
                    out.append((last.split("#", 1)[0], body))
            if "LastEvaluatedKey" not in answer:
                return out, last, False
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
            if len(out) == limit:
                return out, last, True
        return out, last, True
