"""Renkei's own TAXII 2.1 collections on DynamoDB: what routing allowed for each community with a `pull` channel.

One item per (collection, object id, version), with a `date_added_key` the by-date-added index sorts on,
so the TAXII server can page with an opaque cursor across stateless invocations. Beside them, one
`span#<id>` item per object holds its first and last versions, so `match[version]=last` (TAXII's default)
needs one batch read per page instead of a query per object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from gateway.errors import RetryableError

_SKIP = frozenset({"marking-definition", "extension-definition"})
_BATCH = 25


def object_version(obj: dict[str, Any]) -> str:
    """An object's TAXII version: `modified`, else `created` (objects without either have the empty one)."""
    return str(obj.get("modified") or obj.get("created") or "")


# Keeps or drops each of a batch of candidate objects (TAXII match[...] filters).
Select = Callable[[list[dict[str, Any]]], list[bool]]


class CollectionStore:
    """Adds objects to a community's collection (idempotent: the same id and version is stored once)."""

    def __init__(self, table_name: str, client: Any) -> None:
        self._table = table_name
        self._client = client
        self._serialize = TypeSerializer().serialize

    def add(self, collection: str, objects: list[dict[str, Any]]) -> None:
        # One microsecond apart: every object of a batch has its own date_added, so a client that resumes
        # with `added_after` = the last page's X-TAXII-Date-Added-Last skips none of the batch.
        now = datetime.now(UTC)
        items = []
        for index, obj in enumerate(objects):
            version = object_version(obj)
            added = (now + timedelta(microseconds=index)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
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
        for obj in objects:
            if obj["type"] not in _SKIP:
                self._widen_span(collection, obj["id"], object_version(obj))

    def _widen_span(self, collection: str, object_id: str, version: str) -> None:
        """Move the object's first/last versions to include `version` (two conditional updates, both idempotent)."""
        key = {"pk": {"S": f"col#{collection}"}, "sk": {"S": f"span#{object_id}"}}
        for bound, test in (("last_version", "<"), ("first_version", ">")):
            try:
                self._client.update_item(
                    TableName=self._table, Key=key, UpdateExpression=f"SET {bound} = :v",
                    ConditionExpression=f"attribute_not_exists({bound}) OR {bound} {test} :v",
                    ExpressionAttributeValues={":v": {"S": version}},
                )  # fmt: skip
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise RetryableError(f"collection write failed: {exc.response['Error']['Code']}") from exc

    def spans(self, collection: str, object_ids: set[str]) -> dict[str, tuple[str, str]]:
        """(first version, last version) of each object held in the collection."""
        out: dict[str, tuple[str, str]] = {}
        ids = sorted(object_ids)
        for start in range(0, len(ids), 100):
            keys = [{"pk": {"S": f"col#{collection}"}, "sk": {"S": f"span#{i}"}} for i in ids[start : start + 100]]
            pending: dict[str, Any] = {self._table: {"Keys": keys}}
            for _ in range(8):
                try:
                    answer = self._client.batch_get_item(RequestItems=pending)
                except ClientError as exc:
                    raise RetryableError(f"collection read failed: {exc.response['Error']['Code']}") from exc
                for item in answer["Responses"].get(self._table, []):
                    out[item["sk"]["S"][5:]] = (item["first_version"]["S"], item["last_version"]["S"])
                pending = answer.get("UnprocessedKeys") or {}
                if not pending:
                    break
            else:
                # a span missing would make `match[version]=last` skip its object: fail the page instead
                raise RetryableError("collection read: keys still unprocessed after retries")
        return out

    def versions_of(self, collection: str, object_id: str) -> list[tuple[str, dict[str, Any]]]:
        """Every version of one object in the collection, oldest first: [(date added, object)]."""
        found = [
            (item["date_added_key"]["S"].split("#", 1)[0], orjson.loads(item["body"]["S"]))
            for item in self._items(collection, sk_prefix=f"{object_id}#")
        ]
        return sorted(found, key=lambda pair: object_version(pair[1]))

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
        return [orjson.loads(item["body"]["S"]) for item in self._items(collection) if "body" in item]

    def _items(self, collection: str, sk_prefix: str = "") -> Iterator[dict[str, Any]]:
        """The collection's items (objects, and spans unless `sk_prefix` excludes them), page after page."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk" + (" AND begins_with(sk, :sk)" if sk_prefix else ""),
            "ExpressionAttributeValues": {":pk": {"S": f"col#{collection}"}},
        }
        if sk_prefix:
            kwargs["ExpressionAttributeValues"][":sk"] = {"S": sk_prefix}
        while True:
            page = self._client.query(**kwargs)
            yield from page["Items"]
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def page(
        self, collection: str, after: str | None, limit: int, select: Select | None = None
    ) -> tuple[list[tuple[str, dict[str, Any]]], str | None, bool]:
        """Objects added after the `after` key, oldest first, from the by-date-added index: ([(date added,
        object)], the last key read, whether more follow). Stateless: the key is all a next page needs.

        `select` filters a batch of candidates at once (it may read the spans of their ids in one call).
        """
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
            keys = [item["date_added_key"]["S"] for item in answer["Items"]]
            bodies = [orjson.loads(item["body"]["S"]) for item in answer["Items"]]
            chosen = select(bodies) if select is not None else [True] * len(bodies)
            for key, body, keep in zip(keys, bodies, chosen, strict=True):
                if len(out) == limit:
                    return out, last, True
                last = key
                if keep:
                    out.append((key.split("#", 1)[0], body))
            if "LastEvaluatedKey" not in answer:
                return out, last, False
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
            if len(out) == limit:
                return out, last, True
        return out, last, True
