"""The state port on DynamoDB: one table (schemas.tables.STATE), batched calls, conditional writes where races matter.

Item layout (pk, sk):
    obj#<id>            v#<version>   a version: dedupe hash, TLP, scope, decisions, normalised body
    obj#<id>            latest        the newest version held
    dlv#<dest>#<id>     v#<version>   a delivery (written once)
    dlv#<dest>#<id>     latest        the newest version that destination received
    pending             <pending id>  objects waiting for approval (compressed), expires_at for TTL
    pending             <id>#<n>      further parts of a pending input too large for one item
    seal#<token>        -             a sealed anonymisation mapping
    cursor#<name>       -             a poller's cursor
    quarantine          <time>#<id>   a quarantine record

A claim (a version, a delivery) is a put conditional on the key being new plus a conditional move of its
partition's `latest` item. On DynamoDB both go in transactions of up to 100 actions. With `exclusive_writer`
(the embedded default, where this process is the table's only writer) they are checked and written in
batches under a lock instead: moto copies the whole table for every transaction action, which makes a
claim cost O(table size) there (measured: 65 claims/s into an empty table, 10/s at 800 items).
"""

from __future__ import annotations

import dataclasses
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from connectors.aws.errors import translate
from gateway.errors import PermanentError, RetryableError
from gateway.model import Delivery, PendingItem, QuarantineRecord, VersionRecord

_GET_BATCH = 100
_WRITE_BATCH = 25
_TRANSACT_ACTIONS = 100
_TRANSACT_BYTES = 3_500_000  # a transaction carries at most 4 MB
_MAX_ITEM_BYTES = 380_000  # an item holds at most 400 KB, names and keys included
_ATTEMPTS = 8
# DynamoDB's TTL may delete an item soon after it expires: keep pending items long enough for
# `expire_pending` to see them and send the notice; TTL is only the backstop.
_PENDING_GRACE_SECONDS = 7 * 86_400
# cancellation reasons of a transaction that a later try may not meet
_RETRYABLE_REASONS = frozenset({"TransactionConflict", "ProvisionedThroughputExceeded", "ThrottlingError"})
_CONDITION_FAILED = "ConditionalCheckFailedException"

Key = tuple[str, str]


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _newer(version: str, held: str | None) -> bool:
    # sha256 versions (objects without timestamps) have no order: any other one is an update
    return held is None or (version != held and (version.startswith("sha256:") or version > held))


def _backoff(attempt: int) -> None:
    time.sleep(min(0.05 * 2**attempt, 1.0))


@dataclasses.dataclass(frozen=True)
class _Claim:
    """Write `item` only if its key is new; move its partition's `latest` item forward to `version`."""

    item: dict[str, Any]
    version: str
    pointer: dict[str, Any]  # attributes the `latest` item carries besides pk, sk and version

    @property
    def key(self) -> Key:
        return (self.item["pk"]["S"], self.item["sk"]["S"])

    @property
    def pk(self) -> str:
        return str(self.item["pk"]["S"])

    @property
    def size(self) -> int:
        return sum(len(name) + len(next(iter(value.values()))) for name, value in self.item.items())


def _targets(claims: Sequence[_Claim], indexes: Iterable[int], skip: set[str] | None = None) -> dict[str, _Claim]:
    """Per partition, the claim whose version its `latest` item should move to: the newest among them."""
    out: dict[str, _Claim] = {}
    for i in indexes:
        claim = claims[i]
        if skip and claim.pk in skip:
            continue
        held = out.get(claim.pk)
        if held is None or _newer(claim.version, held.version):
            out[claim.pk] = claim
    return out


class DynamoStateStore:
    """Implements gateway.ports.StateStore. Takes a low-level boto3 DynamoDB client, built by the caller.

    `exclusive_writer`: only for a table that no other store writes (the embedded default on moto, whose
    one store is shared by every worker thread). Claims are then checked and written in batches under a
    lock of this store, instead of in transactions.
    """

    def __init__(self, table_name: str, client: Any, *, exclusive_writer: bool = False) -> None:
        self.table = table_name
        self.client = client
        self._exclusive = threading.Lock() if exclusive_writer else None

    # --- calls, with SDK errors translated where they happen ----------------------------------------

    def _call(self, operation: str, expect: str | None = None, **kwargs: Any) -> Any:
        """Call the client. Returns None when the call fails with the `expect`ed error code."""
        try:
            return getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            if expect is not None and exc.response.get("Error", {}).get("Code") == expect:
                return None
            raise translate(exc, f"dynamodb {operation}") from exc
        except BotoCoreError as exc:
            raise translate(exc, f"dynamodb {operation}") from exc

    def _batch_get(self, keys: Iterable[Key], projection: str | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        unique = [{"pk": _s(pk), "sk": _s(sk)} for pk, sk in dict.fromkeys(keys)]  # a repeated key is refused
        for chunk in _chunks(unique, _GET_BATCH):
            # Consistent: dedupe must see a version claimed a moment ago, or a looser one could pass as new.
            request: dict[str, Any] = {self.table: {"Keys": list(chunk), "ConsistentRead": True}}
            if projection:
                request[self.table]["ProjectionExpression"] = projection
            for attempt in range(_ATTEMPTS):
                response = self._call("batch_get_item", RequestItems=request)
                found += response["Responses"].get(self.table, [])
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                _backoff(attempt)
            else:
                raise RetryableError("dynamodb batch_get_item: keys still unprocessed")
        return found

    def _batch_write(self, puts: Sequence[dict[str, Any]] = (), deletes: Iterable[Key] = ()) -> None:
        # one request per key (a batch refuses two on the same item); the last write of a key wins
        requests: dict[Key, dict[str, Any]] = {}
        for item in puts:
            requests[(item["pk"]["S"], item["sk"]["S"])] = {"PutRequest": {"Item": item}}
        for pk, sk in deletes:
            requests[(pk, sk)] = {"DeleteRequest": {"Key": {"pk": _s(pk), "sk": _s(sk)}}}
        for chunk in _chunks(list(requests.values()), _WRITE_BATCH):
            request: dict[str, Any] = {self.table: list(chunk)}
            for attempt in range(_ATTEMPTS):
                response = self._call("batch_write_item", RequestItems=request)
                request = response.get("UnprocessedItems") or {}
                if not request:
                    break
                _backoff(attempt)
            else:
                raise RetryableError("dynamodb batch_write_item: items still unprocessed")

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

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self._call("get_item", TableName=self.table, Key={"pk": _s(pk), "sk": _s(sk)}, ConsistentRead=True)
        item: dict[str, Any] | None = response.get("Item")
        return item

    # --- claims: conditional puts, and `latest` moved forward ---------------------------------------

    def _claim(self, claims: Sequence[_Claim]) -> list[bool]:
        """Which claims won: their key was new. A key twice in one call is won by its first claim."""
        won = [False] * len(claims)
        first: dict[Key, int] = {}
        for i, claim in enumerate(claims):
            first.setdefault(claim.key, i)
        fresh = sorted(first.values())
        if self._exclusive is not None:
            with self._exclusive:
                self._claim_checked(claims, fresh, won)
        else:
            for chunk in self._transactions(claims, fresh):
                self._claim_transaction(claims, chunk, won)
        return won

    @staticmethod
    def _transactions(claims: Sequence[_Claim], fresh: list[int]) -> Iterator[list[int]]:
        """Chunks of claims whose puts plus one `latest` update per partition fit in one transaction."""
        chunk: list[int] = []
        partitions: set[str] = set()
        size = 0
        for i in fresh:
            claim = claims[i]
            actions = len(chunk) + len(partitions | {claim.pk}) + 1
            if chunk and (actions > _TRANSACT_ACTIONS or size + claim.size > _TRANSACT_BYTES):
                yield chunk
                chunk, partitions, size = [], set(), 0
            chunk.append(i)
            partitions.add(claim.pk)
            size += claim.size
        if chunk:
            yield chunk

    def _put_action(self, claim: _Claim) -> dict[str, Any]:
        return {"TableName": self.table, "Item": claim.item, "ConditionExpression": "attribute_not_exists(pk)"}

    def _advance_action(self, claim: _Claim) -> dict[str, Any]:
        names = {"#v": "version"}
        values = {":v": _s(claim.version)}
        sets = ["#v = :v"]
        for n, (name, value) in enumerate(claim.pointer.items()):
            names[f"#a{n}"] = name
            values[f":a{n}"] = value
            sets.append(f"#a{n} = :a{n}")
        newer = "#v <> :v" if claim.version.startswith("sha256:") else "#v < :v"
        return {
            "TableName": self.table,
            "Key": {"pk": claim.item["pk"], "sk": _s("latest")},
            "UpdateExpression": "SET " + ", ".join(sets),
            "ConditionExpression": f"attribute_not_exists(#v) OR {newer}",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def _claim_transaction(self, claims: Sequence[_Claim], chunk: list[int], won: list[bool]) -> None:
        todo = list(chunk)
        stale: set[str] = set()  # partitions whose `latest` already holds a version at least as new
        for attempt in range(_ATTEMPTS):
            targets = _targets(claims, todo, stale)
            actions = [{"Put": self._put_action(claims[i])} for i in todo]
            actions += [{"Update": self._advance_action(claim)} for claim in targets.values()]
            try:
                self.client.transact_write_items(TransactItems=actions)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise translate(exc, "dynamodb transact_write_items") from exc
                reasons = [r.get("Code") or "None" for r in exc.response.get("CancellationReasons") or []]
                if len(reasons) != len(actions):
                    break  # no reason per action: find the held keys one put at a time
                unknown = set(reasons) - {"None", "ConditionalCheckFailed"} - _RETRYABLE_REASONS
                if unknown:
                    raise PermanentError(f"dynamodb transact_write_items: {', '.join(sorted(unknown))}") from exc
                failed = [code == "ConditionalCheckFailed" for code in reasons]
                held = {i for i, f in zip(todo, failed, strict=False) if f}
                behind = {pk for pk, f in zip(targets, failed[len(todo) :], strict=True) if f}
                if not held and not behind:
                    _backoff(attempt)  # a conflict with another writer, or throttling: the same again later
                todo = [i for i in todo if i not in held]
                stale |= behind
                if not todo:
                    return
                continue
            except BotoCoreError as exc:
                raise translate(exc, "dynamodb transact_write_items") from exc
            for i in todo:
                won[i] = True
            return
        self._claim_each(claims, todo, won)

    def _claim_each(self, claims: Sequence[_Claim], todo: list[int], won: list[bool]) -> None:
        """One conditional put per claim, then one conditional update per partition: the slow, sure way."""
        for i in todo:
            won[i] = self._call("put_item", expect=_CONDITION_FAILED, **self._put_action(claims[i])) is not None
        for claim in _targets(claims, [i for i in todo if won[i]]).values():
            self._call("update_item", expect=_CONDITION_FAILED, **self._advance_action(claim))

    def _claim_checked(self, claims: Sequence[_Claim], fresh: list[int], won: list[bool]) -> None:
        """Check, then write in batches. Race-free only because every writer of the table holds our lock."""
        held = self._batch_get((claims[i].key for i in fresh), projection="pk, sk")
        held_keys = {(item["pk"]["S"], item["sk"]["S"]) for item in held}
        new = [i for i in fresh if claims[i].key not in held_keys]
        targets = _targets(claims, new)
        pointers = self._batch_get(((pk, "latest") for pk in targets), projection="pk, version")
        current = {item["pk"]["S"]: item["version"]["S"] for item in pointers if "version" in item}
        writes = [claims[i].item for i in new]
        writes += [
            {"pk": _s(pk), "sk": _s("latest"), "version": _s(claim.version), **claim.pointer}
            for pk, claim in targets.items()
            if _newer(claim.version, current.get(pk))
        ]
        self._batch_write(writes)
        for i in new:
            won[i] = True

    # --- versions ------------------------------------------------------------------------------------

    def latest(self, object_ids: Iterable[str]) -> dict[str, VersionRecord]:
        pointers = self._batch_get((f"obj#{i}", "latest") for i in object_ids)
        keys = {(p["pk"]["S"][4:], p["version"]["S"]) for p in pointers}
        return {key[0]: record for key, record in self.versions(keys).items()}

    def versions(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], VersionRecord]:
        items = self._batch_get((f"obj#{i}", f"v#{v}") for i, v in keys)
        records = (_record(item) for item in items)
        return {(r.object_id, r.version): r for r in records}

    def claim_versions(self, records: Sequence[VersionRecord]) -> list[VersionRecord]:
        won = self._claim([_Claim(_version_item(r), r.version, {}) for r in records])
        lost = [(r.object_id, r.version) for r, w in zip(records, won, strict=True) if not w]
        if not lost:
            return []
        held = self.versions(lost)
        return [held[key] for key in lost if key in held]

    def update_versions(self, records: Sequence[VersionRecord]) -> None:
        self._batch_write([_version_item(r) for r in records])

    def history(self, object_id: str) -> list[VersionRecord]:
        items = self._query(f"obj#{object_id}", "v#")
        return sorted((_record(i) for i in items), key=lambda r: (r.recorded_at, r.version))

    # --- deliveries ----------------------------------------------------------------------------------

    def delivered(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        items = self._batch_get((f"dlv#{d}#{i}", "latest") for d, i in pairs)
        return {(item["dest"]["S"], item["object_id"]["S"]): item["version"]["S"] for item in items}

    def record_deliveries(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        # An older version delivered after a newer one gets its own entry; only `latest` stays put.
        recorded = _s(datetime.now(UTC).isoformat())
        claims = [
            _Claim(
                {"pk": _s(f"dlv#{d.destination}#{d.object_id}"), "sk": _s(f"v#{d.version}"), "recorded": recorded},
                d.version,
                {"dest": _s(d.destination), "object_id": _s(d.object_id)},
            )
            for d in deliveries
        ]
        won = self._claim(claims)
        return [d for d, w in zip(deliveries, won, strict=True) if w]

    # --- pending approvals ---------------------------------------------------------------------------

    def put_pending(self, item: PendingItem) -> None:
        body = zlib.compress(orjson.dumps(dataclasses.asdict(item)))
        expires = int(datetime.fromisoformat(item.expires.replace("Z", "+00:00")).timestamp())
        ttl = {"N": str(expires + _PENDING_GRACE_SECONDS)}
        parts = [body[start : start + _MAX_ITEM_BYTES] for start in range(0, len(body), _MAX_ITEM_BYTES)]
        # A large input (thousands of indicators) spans several items: the parts first, so that whoever
        # sees the main item finds them all.
        self._batch_write(
            [
                {"pk": _s("pending"), "sk": _s(f"{item.pending_id}#{n}"), "body": {"B": part}, "expires_at": ttl}
                for n, part in enumerate(parts[1:], start=1)
            ]
        )
        main = {"pk": _s("pending"), "sk": _s(item.pending_id), "body": {"B": parts[0]}, "expires_at": ttl}
        if len(parts) > 1:
            main["parts"] = {"N": str(len(parts))}
        self._call("put_item", TableName=self.table, Item=main)

    def pending(self) -> list[PendingItem]:
        items = self._query("pending")
        parts = {item["sk"]["S"]: bytes(item["body"]["B"]) for item in items if "#" in item["sk"]["S"]}
        found = [_pending(item, parts) for item in items if "#" not in item["sk"]["S"]]
        return sorted((p for p in found if p is not None), key=lambda p: (p.created, p.pending_id))

    def take_pending(self, pending_id: str) -> PendingItem | None:
        response = self._call(
            "delete_item",
            expect=_CONDITION_FAILED,  # someone else took it first
            TableName=self.table,
            Key={"pk": _s("pending"), "sk": _s(pending_id)},
            ConditionExpression="attribute_exists(pk)",
            ReturnValues="ALL_OLD",
        )
        if response is None:
            return None
        main = response["Attributes"]
        keys = [("pending", f"{pending_id}#{n}") for n in range(1, int(main.get("parts", {}).get("N", "1")))]
        parts = {item["sk"]["S"]: bytes(item["body"]["B"]) for item in self._batch_get(keys)}
        self._batch_write(deletes=keys)
        return _pending(main, parts)

    # --- seals, cursors, quarantine ------------------------------------------------------------------

    def put_seal(self, token: str, sealed: bytes) -> None:
        # the first seal of a pseudonym stays: the mapping never changes behind anyone's back
        self._call(
            "put_item",
            expect=_CONDITION_FAILED,
            TableName=self.table,
            Item={"pk": _s(f"seal#{token}"), "sk": _s("-"), "sealed": {"B": sealed}},
            ConditionExpression="attribute_not_exists(pk)",
        )

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
        body = zlib.compress(orjson.dumps(record.body))
        if len(body) < _MAX_ITEM_BYTES - 20_000:  # a diff is a courtesy; the version record itself must fit
            item["body"] = {"B": body}
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


def _pending(main: dict[str, Any], parts: dict[str, bytes]) -> PendingItem | None:
    """The pending item from its main item and further parts; None while a part is missing (being taken)."""
    pending_id = main["sk"]["S"]
    chunks = [bytes(main["body"]["B"])]
    for n in range(1, int(main.get("parts", {}).get("N", "1"))):
        part = parts.get(f"{pending_id}#{n}")
        if part is None:
            return None
        chunks.append(part)
    data = orjson.loads(zlib.decompress(b"".join(chunks)))
    data["hops"] = tuple(data.get("hops", ()))
    data["private_values"] = tuple(data.get("private_values", ()))
    return PendingItem(**data)
