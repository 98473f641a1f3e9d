"""The embedded AWS: moto's server on 127.0.0.1 (a free port), with the hub's tables and buckets.

Moto keeps everything in memory; `state_dir` makes it durable: tables and blobs are loaded on start and
written back on exit, so dedupe, versions, decisions and pending approvals survive between runs.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import socket
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
import orjson
from botocore.config import Config
from moto.server import ThreadedMotoServer

from connectors.aws.dynamo_state import DynamoStateStore
from connectors.aws.provision import create_buckets, create_tables
from connectors.aws.s3_blobs import S3BlobStore
from schemas.tables import ALL_TABLES, QUARANTINE_BUCKET, RAW_BUCKET

REGION = "us-east-1"
_CREDENTIALS = {"aws_access_key_id": "embedded", "aws_secret_access_key": "embedded"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EmbeddedAws:
    """Context manager: start moto, create the resources, load `state_dir`; on exit save and stop."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.state_dir = state_dir
        # Moto's backends are shared by the whole process: a prefix of our own keeps two hubs apart.
        self.prefix = f"renkei-{secrets.token_hex(4)}"
        self.server: ThreadedMotoServer | None = None
        self.endpoint = ""

    def __enter__(self) -> EmbeddedAws:
        # moto's server logs every request through werkzeug; stdout belongs to `--json`, stderr to progress.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        for attempt in range(5):
            port = _free_port()
            self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            try:
                self.server.start()
                break
            except OSError:
                if attempt == 4:
                    raise
        self.endpoint = f"http://127.0.0.1:{port}"
        self.dynamodb = self.client("dynamodb")
        self.s3 = self.client("s3")
        self.tables = create_tables(self.dynamodb, self.prefix)
        self.buckets = create_buckets(self.s3, self.prefix)
        self.state = DynamoStateStore(self.tables["state"], self.dynamodb)
        self.blobs = S3BlobStore(
            self.s3, {"raw": self.buckets[RAW_BUCKET], "quarantine": self.buckets[QUARANTINE_BUCKET]}
        )
        if self.state_dir is not None:
            self._load(self.state_dir)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if self.state_dir is not None:
                self.save()
        finally:
            self._drop()
            if self.server is not None:
                self.server.stop()

    def client(self, service: str) -> Any:
        """A boto3 client for the embedded endpoint: explicit credentials, never the user's AWS config."""
        return boto3.session.Session(region_name=REGION, **_CREDENTIALS).client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint,
            config=Config(retries={"max_attempts": 2, "mode": "standard"}),
        )

    def table_name(self, logical: str) -> str:
        return self.tables[logical]

    # --- persistence ---------------------------------------------------------------------------------

    def save(self) -> None:
        assert self.state_dir is not None
        tables_dir = self.state_dir / "tables"
        tables_dir.mkdir(parents=True, exist_ok=True)
        for spec in ALL_TABLES:
            lines = [orjson.dumps(_encode(item)) for item in self._scan(self.tables[spec.logical_name])]
            _write_atomically(tables_dir / f"{spec.logical_name}.jsonl", b"\n".join(lines))
        for logical, bucket in self.buckets.items():
            folder = self.state_dir / "blobs" / logical
            for key in self._keys(bucket):
                path = folder / key
                if not path.exists():  # blobs are content-addressed or write-once: no need to rewrite
                    path.parent.mkdir(parents=True, exist_ok=True)
                    _write_atomically(path, self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def _load(self, state_dir: Path) -> None:
        for spec in ALL_TABLES:
            path = state_dir / "tables" / f"{spec.logical_name}.jsonl"
            if not path.exists():
                continue
            items = [_decode(orjson.loads(line)) for line in path.read_bytes().splitlines() if line.strip()]
            table = self.tables[spec.logical_name]
            for start in range(0, len(items), 25):
                request = {table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]}
                while request:
                    request = self.dynamodb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
        for logical, bucket in self.buckets.items():
            folder = state_dir / "blobs" / logical
            if folder.exists():
                for path in folder.rglob("*"):
                    if path.is_file():
                        self.s3.put_object(Bucket=bucket, Key=str(path.relative_to(folder)), Body=path.read_bytes())

    def _scan(self, table: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": table}
        while True:
            page = self.dynamodb.scan(**kwargs)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _keys(self, bucket: str) -> list[str]:
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return keys

    def _drop(self) -> None:
        """Free moto's memory: its backends outlive this server in a long-running process (tests)."""
        for table in getattr(self, "tables", {}).values():
            self.dynamodb.delete_table(TableName=table)


def _encode(item: dict[str, Any]) -> dict[str, Any]:
    return {k: ({"B64": base64.b64encode(v["B"]).decode()} if "B" in v else v) for k, v in item.items()}


def _decode(item: dict[str, Any]) -> dict[str, Any]:
    return {k: ({"B": base64.b64decode(v["B64"])} if "B64" in v else v) for k, v in item.items()}


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    Path(temp).replace(path)
