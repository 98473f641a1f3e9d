"""The embedded AWS: moto's server on 127.0.0.1 (a free port), with the hub's tables and buckets.

Moto keeps everything in memory; `state_dir` makes it durable: tables and blobs are loaded on start and
written back on exit, so dedupe, versions, decisions and pending approvals survive between runs.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
import orjson
from botocore.config import Config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

from connectors.aws.dynamo_state import DynamoStateStore
from connectors.aws.provision import create_buckets, create_tables
from connectors.aws.s3_blobs import S3BlobStore
from schemas.tables import ALL_TABLES, QUARANTINE_BUCKET, RAW_BUCKET, REGISTRY

REGION = "us-east-1"
_CREDENTIALS = {"aws_access_key_id": "embedded", "aws_secret_access_key": "embedded"}


# One for the whole process: moto's backends are module-global, shared by every server in it.
_MOTO = threading.Lock()


class SerialMotoServer(ThreadedMotoServer):
    """moto's threaded server answering one request at a time, on a port the OS picks (no race for it).

    moto checks a condition and writes in separate steps, and rolls a cancelled transaction back by restoring
    a copy of the table: two requests at once can both win a conditional write, erase each other's writes
    or fail with a 500. DynamoDB is atomic per item; serialising requests makes moto so.
    """

    def __init__(self) -> None:
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self._failure: OSError | None = None

    def _server_entry(self) -> None:  # moto 5's hook; the stock one never reports a failed bind
        app = DomainDispatcherApplication(create_backend_app)

        def serialised(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            with _MOTO:
                return list(app(environ, start_response))

        try:
            self._server = make_server(
                self._ip_address, self._port, serialised, threaded=True, request_handler=MotoRequestHandler
            )
        except OSError as exc:
            self._failure = exc
            return
        finally:
            self._server_ready_event.set()
        self._server.serve_forever(poll_interval=0.05)  # stop() waits up to one interval

    def start(self) -> None:
        super().start()
        if self._failure is not None:
            raise self._failure

    @property
    def endpoint(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"


class EmbeddedAws:
    """Context manager: start moto, create the resources, load `state_dir`; on exit save and stop."""

    def __init__(self, state_dir: Path | None = None, owns_registry: bool = True) -> None:
        self.state_dir = state_dir
        # `gateway serve` reads the registry but `gateway onboard` writes it, meanwhile: serve must not save
        # its stale copy over a newer one.
        self.owns_registry = owns_registry
        # Moto's backends are shared by the whole process: a prefix of our own keeps two hubs apart.
        self.prefix = f"renkei-{secrets.token_hex(4)}"
        self.server: SerialMotoServer | None = None
        self.endpoint = ""

    def __enter__(self) -> EmbeddedAws:
        # moto's server logs every request through werkzeug; stdout belongs to `--json`, stderr to progress.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = SerialMotoServer()
        self.server.start()
        self.endpoint = self.server.endpoint
        self.dynamodb = self.client("dynamodb")
        self.s3 = self.client("s3")
        self.tables = create_tables(self.dynamodb, self.prefix)
        self.buckets = create_buckets(self.s3, self.prefix)
        # this moto server is private to this process, so the state store may claim without transactions
        self.state = DynamoStateStore(self.tables["state"], self.dynamodb, exclusive_writer=True)
        self.blobs = EmbeddedBlobStore(
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
        return embedded_session().client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint,
            # proxies={}: an HTTP(S)_PROXY in the user's environment must not see requests to 127.0.0.1.
            # No client-side validation: it took half the time of a batch write, and moto validates anyway.
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, proxies={}, parameter_validation=False),
        )

    def table_name(self, logical: str) -> str:
        return self.tables[logical]

    # --- persistence ---------------------------------------------------------------------------------

    def save(self) -> None:
        assert self.state_dir is not None
        tables_dir = self.state_dir / "tables"
        tables_dir.mkdir(parents=True, exist_ok=True)
        for spec in ALL_TABLES:
            if spec is REGISTRY and not self.owns_registry:
                continue
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
        for bucket in getattr(self, "buckets", {}).values():
            for key in self._keys(bucket):
                self.s3.delete_object(Bucket=bucket, Key=key)
            self.s3.delete_bucket(Bucket=bucket)


def embedded_session() -> boto3.session.Session:
    """Explicit credentials for moto: the user's AWS config and credentials are never read."""
    return boto3.session.Session(region_name=REGION, **_CREDENTIALS)


class EmbeddedBlobStore(S3BlobStore):
    """References name the logical bucket (`s3://raw/KEY`): the physical names change with every run, and
    references kept in the state (quarantine records, raw inputs to replay) must still work in the next."""

    def put(self, key: str, data: bytes) -> str:
        bucket, _, key = super().put(key, data).removeprefix("s3://").partition("/")
        logical = next(name for name, physical in self.buckets.items() if physical == bucket)
        return f"s3://{logical}/{key}"

    def get(self, ref: str) -> bytes:
        logical, _, key = ref.removeprefix("s3://").partition("/")
        return super().get(f"s3://{self.buckets.get(logical, logical)}/{key}")


def _encode(item: dict[str, Any]) -> dict[str, Any]:
    return {k: ({"B64": base64.b64encode(v["B"]).decode()} if "B" in v else v) for k, v in item.items()}


def _decode(item: dict[str, Any]) -> dict[str, Any]:
    return {k: ({"B": base64.b64decode(v["B64"])} if "B64" in v else v) for k, v in item.items()}


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    Path(temp).replace(path)
