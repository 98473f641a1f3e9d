"""The blob port on S3: raw inputs and quarantined bytes, so any input can be replayed."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from connectors.aws.errors import translate


class S3BlobStore:
    """Implements gateway.ports.BlobStore. A key's first segment picks the bucket (`raw/...`, `quarantine/...`)."""

    def __init__(self, client: Any, buckets: dict[str, str]) -> None:
        self.client = client
        self.buckets = buckets

    def put(self, key: str, data: bytes) -> str:
        area = key.split("/", 1)[0]
        bucket = self.buckets.get(area) or self.buckets["raw"]
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=data)
        except (BotoCoreError, ClientError) as exc:
            raise translate(exc, "s3 put_object") from exc
        return f"s3://{bucket}/{key}"

    def get(self, ref: str) -> bytes:
        """The bytes at `ref`. Raises PermanentError when there are none (NoSuchKey), RetryableError on throttling."""
        bucket, _, key = ref.removeprefix("s3://").partition("/")
        try:
            body: bytes = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise translate(exc, "s3 get_object") from exc
        return body
