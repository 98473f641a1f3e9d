"""The state port on DynamoDB: one table (schemas.tables.STATE), batched calls, conditional writes where races matter.

Item layout (pk, sk):
    obj#<id>            v#<version>   a version: dedupe hash, TLP, scope, decisions, normalised body
    obj#<id>            latest        the newest version held
    dlv#<dest>#<id>     v#<version>   a delivery (written once)
    dlv#<dest>#<id>     latest        the newest version that destination received
    pending             <pending id>  objects waiting for approval (compressed), expires_at for TTL
    seal#<token>        -             a sealed anonymisation mapping
    cursor#<name>       -             a poller's cursor
    quarantine          <time>#<id>   a quarantine record
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import orjson
from botocore.exceptions import ClientError

from gateway.errors import PermanentError, RetryableError
from gateway.model import Delivery, PendingItem, QuarantineRecord, VersionRecord

T = TypeVar("T")
_GET_BATCH = 100
_WRITE_BATCH = 25
_TRANSACT_RECORDS = 50  # two actions each, under the 100-action limit
_RETRYABLE = frozenset(
    {
        "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
        "InternalServerError", "ServiceUnavailable", "TransactionInProgressException",
    }
)  # fmt: skip
_MAX_ITEM_BYTES = 380_000


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _item_keys(actions: list[dict[str, Any]]) -> set[tuple[str, str]]:
    keys = set()
    for action in actions:
        body = next(iter(action.values()))
        key = body.get("Key") or body["Item"]
        keys.add((key["pk"]["S"], key["sk"]["S"]))
    return keys


def _rounds(
    pairs: Sequence[tuple[str, list[dict[str, Any]]]], size: int
) -> Iterator[list[tuple[str, list[dict[str, Any]]]]]:
    """Transactions of at most `size` pairs in which no item is touched twice (DynamoDB refuses that)."""
    waiting = list(pairs)
    while waiting:
        chunk: list[tuple[str, list[dict[str, Any]]]] = []
        touched: set[tuple[str, str]] = set()
        later = []
        for pair in waiting:
            keys = _item_keys(pair[1])
            if len(chunk) < size and not keys & touched:
                chunk.append(pair)
                touched |= keys
            else:
                later.append(pair)
        yield chunk
        waiting = later


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _newer_condition() -> str:
    # sha256 versions (objects without timestamps) are content-addressed: any new one is an update
    return "attribute_not_exists(version) OR version < :v OR begins_with(:v, :sha)"


class DynamoStateStore:
    """Implements gateway.ports.StateStore. Takes a low-level boto3 DynamoDB client, built by the caller."""

    def __init__(self, table_name: str, client: Any) -> None:
        self.table = table_name
        self.client = client

    # --- calls, with SDK errors translated where they happen ----------------------------------------

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code in _RETRYABLE:
                raise RetryableError(f"dynamodb {operation}: {code}") from exc
            raise

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        unique = list({(k["pk"]["S"], k["sk"]["S"]): k for k in keys}.values())
        for chunk in _chunks(unique, _GET_BATCH):
            request: dict[str, Any] = {self.table: {"Keys": list(chunk), "ConsistentRead": True}}
            for attempt in range(8):
                response = self._call("batch_get_item", RequestItems=request)
                found += response["Responses"].get(self.table, [])
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise RetryableError("dynamodb batch_get_item: keys still unprocessed")
        return found

    def _batch_put(self, items: list[dict[str, Any]]) -> None:
        for chunk in _chunks(items, _WRITE_BATCH):
            request: dict[str, Any] = {self.table: [{"PutRequest": {"Item": item}} for item in chunk]}
            for attempt in range(8):
                response = self._call("batch_write_item", RequestItems=request)
                request = response.get("UnprocessedItems") or {}
                if not request:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise RetryableError("dynamodb batch_write_item: items still unprocessed")

    def _claim(self, pairs: Sequence[tuple[str, list[dict[str, Any]]]]) -> set[str]:
        """Run each pair's actions atomically, many pairs per transaction. Returns keys whose condition failed.

        A cancelled transaction says which action failed; those pairs lose, the rest are retried.
        """
        lost: set[str] = set()
        for chunk in _rounds(pairs, _TRANSACT_RECORDS):
            todo = list(chunk)
            while todo:
                actions = [a for _, acts in todo for a in acts]
                try:
                    self._call("transact_write_items", TransactItems=actions)
                    break
                except ClientError as exc:
                    if exc.response["Error"]["Code"] != "TransactionCanceledException":
                        raise
                    reasons = exc.response.get("CancellationReasons") or []
                    failed = self._failed_pairs(todo, reasons)
                    if not failed:  # cancelled for another reason (a conflict with another writer): retry
                        time.sleep(0.05)
                        continue
                    lost |= {todo[i][0] for i in failed}
                    todo = [p for i, p in enumerate(todo) if i not in failed]
        return lost

    @staticmethod
    def _failed_pairs(todo: list[tuple[str, list[dict[str, Any]]]], reasons: list[dict[str, Any]]) -> set[int]:
        failed: set[int] = set()
        position = 0
        for index, (_, actions) in enumerate(todo):
            for _ in actions:
                if position < len(reasons) and reasons[position].get("Code") == "ConditionalCheckFailed":
                    failed.add(index)
                position += 1
        return failed

    # --- versions ------------------------------------------------------------------------------------

    def latest(self, object_ids: Iterable[str]) -> dict[str, VersionRecord]:
        pointers = self._batch_get([{"pk": _s(f"obj#{i}"), "sk": _s("latest")} for i in object_ids])
        keys = {(p["pk"]["S"][4:], p["version"]["S"]) for p in pointers}
        return {key[0]: record for key, record in self.versions(keys).items()}

    def versions(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], VersionRecord]:
        items = self._batch_get([{"pk": _s(f"obj#{i}"), "sk": _s(f"v#{v}")} for i, v in keys])
        records = (_record(item) for item in items)
        return {(r.object_id, r.version): r for r in records}

    def claim_versions(self, records: Sequence[VersionRecord]) -> list[VersionRecord]:
        pairs = []
        by_key = {}
        for record in records:
            key = f"{record.object_id}\x00{record.version}"
            by_key[key] = record
            put = {
                "Put": {
                    "TableName": self.table,
                    "Item": _version_item(record),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            pointer = {
                "Update": {
                    "TableName": self.table,
                    "Key": {"pk": _s(f"obj#{record.object_id}"), "sk": _s("latest")},
                    "UpdateExpression": "SET version = :v",
                    "ConditionExpression": _newer_condition(),
                    "ExpressionAttributeValues": {":v": _s(record.version), ":sha": _s("sha256:")},
                }
            }
            pairs.append((key, [put, pointer]))
        lost = self._claim(pairs)
        if not lost:
            return []
        # A pair can fail on its pointer (a newer version landed meanwhile) rather than on its version item:
        # store the version alone then, which is still a claim this worker won.
        held = self.versions((by_key[k].object_id, by_key[k].version) for k in lost)
        losers = []
        for key in lost:
            record = by_key[key]
            if (record.object_id, record.version) in held:
                losers.append(held[(record.object_id, record.version)])
            elif self._claim([(key, [{"Put": {"TableName": self.table, "Item": _version_item(record),
                                                "ConditionExpression": "attribute_not_exists(pk)"}}])]):  # fmt: skip
                losers.append(self.versions([(record.object_id, record.version)])[(record.object_id, record.version)])
        return losers

    def update_versions(self, records: Sequence[VersionRecord]) -> None:
        self._batch_put([_version_item(r) for r in records])

    def history(self, object_id: str) -> list[VersionRecord]:
        items = self._query(f"obj#{object_id}", "v#")
        return sorted((_record(i) for i in items), key=lambda r: r.recorded_at)

    def _query(self, pk: str, sk_prefix: str | None = None) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        if sk_prefix is None:
            kwargs["KeyConditionExpression"] = "pk = :pk"
            kwargs["ExpressionAttributeValues"] = {":pk": _s(pk)}
        else:
            kwargs["KeyConditionExpression"] = "pk = :pk AND begins_with(sk, :sk)"
            kwargs["ExpressionAttributeValues"] = {":pk": _s(pk), ":sk": _s(sk_prefix)}
        items: list[dict[str, Any]] = []
        while True:
            page = self._call("query", **kwargs)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- deliveries ----------------------------------------------------------------------------------

    def delivered(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        items = self._batch_get([{"pk": _s(f"dlv#{d}#{i}"), "sk": _s("latest")} for d, i in pairs])
        return {(item["dest"]["S"], item["object_id"]["S"]): item["version"]["S"] for item in items}

    def record_deliveries(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        pairs = []
        by_key = {}
        logs = {}
        for d in deliveries:
            key = f"{d.destination}\x00{d.object_id}\x00{d.version}"
            by_key[key] = d
            pk = _s(f"dlv#{d.destination}#{d.object_id}")
            log = {
                "Put": {
                    "TableName": self.table,
                    "Item": {"pk": pk, "sk": _s(f"v#{d.version}"), "recorded": _s(datetime.now().isoformat())},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            pointer = {
                "Update": {
                    "TableName": self.table,
                    "Key": {"pk": pk, "sk": _s("latest")},
                    "UpdateExpression": "SET version = :v, dest = :d, object_id = :o",
                    "ConditionExpression": _newer_condition(),
                    "ExpressionAttributeValues": {
                        ":v": _s(d.version), ":sha": _s("sha256:"), ":d": _s(d.destination), ":o": _s(d.object_id),
                    },
                }
            }  # fmt: skip
            logs[key] = log
            pairs.append((key, [log, pointer]))
        lost = self._claim(pairs)
        # An older version delivered after a newer one still gets its log entry; only the pointer stays put.
        for key in list(lost):
            if not self._claim([(key, [logs[key]])]):
                lost.discard(key)
        return [d for key, d in by_key.items() if key not in lost]

    # --- pending approvals ---------------------------------------------------------------------------

    def put_pending(self, item: PendingItem) -> None:
        body = zlib.compress(orjson.dumps(dataclasses.asdict(item)))
        if len(body) > _MAX_ITEM_BYTES:
            raise PermanentError(f"pending item of {len(body):,} compressed bytes is too large for one item")
        expires = int(datetime.fromisoformat(item.expires.replace("Z", "+00:00")).timestamp())
        record = {
            "pk": _s("pending"),
            "sk": _s(item.pending_id),
            "body": {"B": body},
            "expires_at": {"N": str(expires)},
        }
        self._call("put_item", TableName=self.table, Item=record)

    def pending(self) -> list[PendingItem]:
        items = [_pending(i) for i in self._query("pending")]
        return sorted(items, key=lambda p: p.created)

    def take_pending(self, pending_id: str) -> PendingItem | None:
        try:
            response = self._call(
                "delete_item",
                TableName=self.table,
                Key={"pk": _s("pending"), "sk": _s(pending_id)},
                ConditionExpression="attribute_exists(pk)",
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return _pending(response["Attributes"])

    # --- seals, cursors, quarantine ------------------------------------------------------------------

    def put_seal(self, token: str, sealed: bytes) -> None:
        try:  # the first seal of a pseudonym stays: the mapping never changes behind anyone's back
            self._call(
                "put_item",
                TableName=self.table,
                Item={"pk": _s(f"seal#{token}"), "sk": _s("-"), "sealed": {"B": sealed}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def get_seal(self, token: str) -> bytes | None:
        item = self._get(f"seal#{token}", "-")
        return bytes(item["sealed"]["B"]) if item else None

    def get_cursor(self, name: str) -> dict[str, Any] | None:
        item = self._get(f"cursor#{name}", "-")
        return orjson.loads(item["value"]["S"]) if item else None

    def put_cursor(self, name: str, value: dict[str, Any]) -> None:
        item = {"pk": _s(f"cursor#{name}"), "sk": _s("-"), "value": _s(orjson.dumps(value).decode())}
        self._call("put_item", TableName=self.table, Item=item)

    def add_quarantine(self, record: QuarantineRecord) -> None:
        item = {
            "pk": _s("quarantine"),
            "sk": _s(f"{record.recorded_at}#{record.quarantine_id}"),
            "record": _s(orjson.dumps(dataclasses.asdict(record)).decode()),
        }
        self._call("put_item", TableName=self.table, Item=item)

    def quarantined(self) -> list[QuarantineRecord]:
        return [QuarantineRecord(**orjson.loads(i["record"]["S"])) for i in self._query("quarantine")]

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self._call("get_item", TableName=self.table, Key={"pk": _s(pk), "sk": _s(sk)}, ConsistentRead=True)
        item: dict[str, Any] | None = response.get("Item")
        return item


def _version_item(record: VersionRecord) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": _s(f"obj#{record.object_id}"),
        "sk": _s(f"v#{record.version}"),
        "object_id": _s(record.object_id),
        "version": _s(record.version),
        "content_hash": _s(record.content_hash),
        "tlp": _s(record.tlp),
        "scope": _s(orjson.dumps(record.scope).decode()),
        "connector": _s(record.connector),
        "sender_org": _s(record.sender_org),
        "recorded_at": _s(record.recorded_at),
        "status": _s(record.status),
        "decisions": _s(orjson.dumps(record.decisions).decode()),
        "config_version": _s(record.config_version),
    }
    if record.body is not None:
        body = orjson.dumps(record.body)
        if len(body) < _MAX_ITEM_BYTES:  # a diff is a courtesy; the version record itself must fit
            item["body"] = {"B": zlib.compress(body)}
    return item


def _record(item: dict[str, Any]) -> VersionRecord:
    decisions = {d: (bool(v[0]), str(v[1])) for d, v in orjson.loads(item["decisions"]["S"]).items()}
    body = orjson.loads(zlib.decompress(bytes(item["body"]["B"]))) if "body" in item else None
    return VersionRecord(
        object_id=item["object_id"]["S"],
        version=item["version"]["S"],
        content_hash=item["content_hash"]["S"],
        tlp=item["tlp"]["S"],
        scope=orjson.loads(item["scope"]["S"]),
        connector=item["connector"]["S"],
        sender_org=item["sender_org"]["S"],
        recorded_at=item["recorded_at"]["S"],
        status=item["status"]["S"],
        decisions=decisions,
        body=body,
        config_version=item["config_version"]["S"],
    )


def _pending(item: dict[str, Any]) -> PendingItem:
    data = orjson.loads(zlib.decompress(bytes(item["body"]["B"])))
    data["hops"] = tuple(data.get("hops", ()))
    return PendingItem(**data)
