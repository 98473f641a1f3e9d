"""The composition root of every function: clients, stores, the routing config and a Pipeline, built once.

On AWS everything comes from the environment the stack sets (`RENKEI_*`). `gateway serve` and tests build a
`Wiring` themselves (moto's endpoint, their own stores) and hand it over with `use(wiring)`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from connectors.aws.dynamo_state import DynamoStateStore
from connectors.aws.errors import translate
from connectors.aws.registry import DynamoRegistryStore
from connectors.aws.s3_blobs import S3BlobStore
from functions.observability import logger
from gateway.errors import NotOnboarded
from gateway.pipeline import Pipeline
from gateway.ports import BlobStore, Channel, RegistryStore, StateStore
from schemas.config import HubConfig

# Every environment variable that names a secret in the config (*_env): loaded from SSM by reference.
SECRET_FIELDS = ("password_env", "public_key_env", "signing_key_env", "seal_key_env")


ENV_PREFIX = "RENKEI_"


class Settings(BaseModel):
    """What the stack puts in each function's environment: field `state_table` is `RENKEI_STATE_TABLE`, ..."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state_table: str
    registry_table: str
    objects_table: str
    raw_bucket: str
    quarantine_bucket: str
    envelopes_queue_url: str = ""
    deliveries_queue_url: str = ""
    # SSM path (e.g. /renkei/<hub>/) under which each secret the config names by `*_env` is a SecureString
    # parameter of that name; empty: the secrets are in the environment already (embedded default).
    secrets_path: str = ""
    config_ttl_seconds: float = 60.0
    endpoint_url: str | None = None  # moto's server for `gateway serve`; None on AWS
    region: str | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """The settings from `RENKEI_*` variables. Raises pydantic.ValidationError naming any that is missing."""
        env = os.environ if environ is None else environ
        return cls.model_validate(
            {name: env[ENV_PREFIX + name.upper()] for name in cls.model_fields if ENV_PREFIX + name.upper() in env}
        )

    @classmethod
    def env_names(cls, required_only: bool = False) -> set[str]:
        """The environment variable names (the stack sets every required one on every function)."""
        return {ENV_PREFIX + n.upper() for n, f in cls.model_fields.items() if f.is_required() or not required_only}


def secret_names(config: HubConfig) -> set[str]:
    """The environment variable names that the config uses for secrets (passwords, keys)."""
    names: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in SECRET_FIELDS and isinstance(item, str):
                    names.add(item)
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(config.model_dump())
    return names


@dataclass(eq=False)  # compared and hashed by identity: handlers cache per wiring
class Wiring:
    """Adapters for one process. Fields left None are built from `settings` on first use."""

    settings: Settings
    session: Any = None  # a boto3 Session; the default credentials chain when None
    state: StateStore | None = None
    blobs: BlobStore | None = None
    registry: RegistryStore | None = None
    # Where routing comes from: the registry (default), or a fixed config for `gateway serve --config FILE`.
    config_source: Callable[[], tuple[HubConfig, str]] | None = None
    seal_key: bytes | None = None
    _cached: tuple[float, HubConfig, str] | None = field(default=None, repr=False)
    _secrets_loaded: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.state is None:
            self.state = DynamoStateStore(self.settings.state_table, self.dynamodb)
        if self.blobs is None:
            self.blobs = S3BlobStore(
                self.s3, {"raw": self.settings.raw_bucket, "quarantine": self.settings.quarantine_bucket}
            )
        if self.registry is None:
            self.registry = DynamoRegistryStore(self.settings.registry_table, self.dynamodb)

    # --- clients, built once per process -------------------------------------------------------------

    def client(self, service: str) -> Any:
        session = self.session or boto3.session.Session(region_name=self.settings.region)
        config = Config(retries={"max_attempts": 4, "mode": "standard"})
        if self.settings.endpoint_url:
            # proxies={}: a proxy in the environment must not see requests to the local moto server
            config = config.merge(Config(proxies={}))
        return session.client(service, endpoint_url=self.settings.endpoint_url, config=config)

    @cached_property
    def dynamodb(self) -> Any:
        return self.client("dynamodb")

    @cached_property
    def s3(self) -> Any:
        return self.client("s3")

    @cached_property
    def sqs(self) -> Any:
        return self.client("sqs")

    @cached_property
    def ssm(self) -> Any:
        return self.client("ssm")

    # --- routing config --------------------------------------------------------------------------------

    def config(self) -> tuple[HubConfig, str]:
        """(config, version) as onboarded, cached for `config_ttl_seconds`. Raises NotOnboarded, RetryableError."""
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self.settings.config_ttl_seconds:
                return self._cached[1], self._cached[2]
            if self.config_source is not None:
                config, version = self.config_source()
            else:
                assert self.registry is not None
                current = self.registry.current()
                if current is None:
                    raise NotOnboarded("the registry holds no config: run `gateway onboard --aws`")
                config, version = current[1], f"registry:{current[0]}"
            self._load_secrets(config)
            self._cached = (now, config, version)
            return config, version

    def fresh_config(self) -> tuple[HubConfig, str]:
        """The config as it is now, not as cached (the deliverer's check just before sending)."""
        with self._lock:
            self._cached = None
        return self.config()

    def _load_secrets(self, config: HubConfig) -> None:
        """Put the secrets the config names into the environment, from SSM, once per name and process."""
        path = self.settings.secrets_path
        wanted = {n for n in secret_names(config) if n not in self._secrets_loaded and n not in os.environ}
        if not path or not wanted:
            return
        prefix = path.rstrip("/") + "/"
        names = sorted(prefix + n for n in wanted)
        for start in range(0, len(names), 10):  # GetParameters takes at most 10 names
            try:
                answer = self.ssm.get_parameters(Names=names[start : start + 10], WithDecryption=True)
            except (BotoCoreError, ClientError) as exc:
                raise translate(exc, "ssm get_parameters") from exc
            for parameter in answer.get("Parameters", []):
                os.environ[parameter["Name"].removeprefix(prefix)] = parameter["Value"]
            for missing in answer.get("InvalidParameters", []):
                # Named in the config but not stored: the channel that needs it fails when used, with its name.
                logger.warning("secret not found", parameter=missing)
        self._secrets_loaded |= wanted

    # --- the pipeline ----------------------------------------------------------------------------------

    def seal_key_for(self, config: HubConfig) -> bytes:
        if self.seal_key is not None:
            return self.seal_key
        name = config.hub.seal_key_env
        return os.environ.get(name, "").encode() if name else b""

    def pipeline(self, config: HubConfig, version: str, channel: Channel) -> Pipeline:
        assert self.state is not None and self.blobs is not None
        return Pipeline(
            config, self.state, self.blobs, channel, seal_key=self.seal_key_for(config), config_version=version
        )


_current: Wiring | None = None
_current_lock = threading.Lock()


def current() -> Wiring:
    """The process's wiring: the one handed to `use`, else one built from the environment."""
    global _current
    with _current_lock:
        if _current is None:
            _current = Wiring(Settings.from_env())
        return _current


def use(wiring: Wiring | None) -> None:
    """Make `wiring` the one every handler uses (`gateway serve`, tests); None: rebuild from the environment."""
    global _current
    with _current_lock:
        _current = wiring
