"""`gateway serve`: the hub on one machine. Pollers on their schedules, mail dropped into a folder, the HTTP
API, all on the embedded default; routing re-read from the registry every few seconds, so an onboarded
change is in force without a restart.

One worker thread runs every job in turn (a poll, a mail file), so the pipeline never races itself; the
scheduler and the folder watcher only enqueue. Ctrl-C lets the running job finish, drains the queues for a
few seconds, saves the state (and what is still queued) and stops: polls not yet run run at the next start,
mail not yet read is still in its folder.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import FrameType

from rich.console import Console

from gateway.errors import RenkeiError
from local.embedded import REGION, embedded_session
from local.onboard import load_registry
from local.runtime import EmbeddedHub, seal_key
from schemas.config import EmailConnector, HubConfig, StixConnector, parse_duration
from schemas.schedules import DEFAULT_EVERY, polls
from schemas.tables import QUARANTINE_BUCKET, RAW_BUCKET

ROUTING_TTL_SECONDS = 5.0  # how long a narrowed scope may take to be in force
SAVE_EVERY_SECONDS = 30.0
EXPIRE_EVERY_SECONDS = 60.0
VISIBILITY_SECONDS = 10
DRAIN_ON_STOP_SECONDS = 10.0
MAIL_SUFFIXES = (".eml",)


class Routing:
    """The routing in force: a fixed --config, or the registry onboarded into --state, re-read when stale."""

    def __init__(
        self, fixed: tuple[HubConfig, str] | None, state_dir: Path | None, base: Path, ttl: float = ROUTING_TTL_SECONDS
    ):
        if fixed is None and state_dir is None:
            raise ValueError("serve needs --config or an onboarded --state")
        self._base = base
        self._fixed = None if fixed is None else (absolute_sources(fixed[0], base), fixed[1])
        self._state_dir = state_dir
        self._ttl = ttl
        self._cached: tuple[HubConfig, str] | None = self._fixed
        self._read_at = float("-inf")

    @property
    def fixed(self) -> tuple[HubConfig, str] | None:
        return self._fixed

    def current(self) -> tuple[HubConfig, str]:
        if self._fixed is not None:
            return self._fixed
        if self._cached is None or time.monotonic() - self._read_at >= self._ttl:
            assert self._state_dir is not None
            onboarded = load_registry(self._state_dir)
            if onboarded is None:
                raise RenkeiError(f"nothing onboarded in {self._state_dir}: run `gateway onboard` first")
            self._cached = absolute_sources(onboarded[1], self._base), f"registry:{onboarded[0]}"
            self._read_at = time.monotonic()
        return self._cached


def absolute_sources(config: HubConfig, base: Path) -> HubConfig:
    """Relative `source` folders are relative to `base` (the config file's folder, or where serve runs)."""
    connectors = []
    for connector in config.connectors:
        source = getattr(connector, "source", None)
        if source and not source.startswith(("http://", "https://")) and not Path(source).is_absolute():
            connector = connector.model_copy(update={"source": str((base / source).resolve())})
        connectors.append(connector)
    return config.model_copy(update={"connectors": connectors})


@dataclass(frozen=True)
class Job:
    """Read one connector's inputs at `location` (None: its configured source)."""

    connector_id: str
    location: str | None = None
    done: Callable[[], None] | None = None  # after a successful run, e.g. move the mail file away


def pollable(config: HubConfig) -> dict[str, float]:
    """Connector id -> polling interval in seconds, for what `serve` polls on a schedule.

    What polls on AWS (schemas.schedules), and bundle folders too; mail folders are watched instead (each file
    once, as an SES receipt rule would hand it over), and peers push.
    """
    intervals = {}
    for connector in config.connectors:
        local_folder = isinstance(connector, StixConnector) and bool(connector.source)
        if isinstance(connector, EmailConnector) or not (polls(connector) or local_folder):
            continue
        every = connector.every or DEFAULT_EVERY.get(connector.type, "15m")
        intervals[connector.id] = parse_duration(every).total_seconds()
    return intervals


@dataclass
class Scheduler:
    """Enqueues a poll for each polling connector when it is due; picks up added or changed intervals."""

    jobs: queue.Queue[Job]
    due: dict[str, float] = field(default_factory=dict)

    def tick(self, config: HubConfig, now: float) -> None:
        intervals = pollable(config)
        for connector_id in list(self.due):
            if connector_id not in intervals:
                del self.due[connector_id]  # removed by onboarding
        for connector_id, every in intervals.items():
            if now >= self.due.setdefault(connector_id, now):
                self.jobs.put(Job(connector_id))
                self.due[connector_id] = now + every


@dataclass
class MailWatcher:
    """Each `.eml` dropped into an e-mail connector's `source` folder is read once, then moved to `done_dir`."""

    jobs: queue.Queue[Job]
    done_dir: Path
    queued: set[Path] = field(default_factory=set)

    def tick(self, config: HubConfig) -> None:
        for connector in config.connectors:
            if not isinstance(connector, EmailConnector) or not connector.source:
                continue
            folder = Path(connector.source)  # made absolute by Routing
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                if path.is_file() and path.suffix.lower() in MAIL_SUFFIXES and path not in self.queued:
                    self.queued.add(path)
                    self.jobs.put(Job(connector.id, str(path), done=self._mover(connector.id, path)))

    def _mover(self, connector_id: str, path: Path) -> Callable[[], None]:
        def move() -> None:
            target = self.done_dir / connector_id
            target.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), str(target / path.name))
            self.queued.discard(path)

        return move


class Worker:
    """Drives the Lambda handlers on the embedded default, with events shaped as AWS sends them.

    The same code as on AWS: a poll is the poller's scheduled event, a mail file becomes the S3 object an SES
    receipt rule writes and its event, and the router and deliverer drain their SQS queues in batches.
    """

    def __init__(self, hub: EmbeddedHub, routing: Routing, console: Console) -> None:
        _quiet_powertools()
        from functions import localrun, runs, wiring
        from functions.deliver import handler as deliver
        from functions.mail_ingest import handler as mail_ingest
        from functions.poller import handler as poller
        from functions.router import handler as router

        self._localrun, self._poller, self._mail, self._runs = localrun, poller, mail_ingest, runs
        self._wiring = wiring
        self._router, self._deliver = router, deliver
        self.hub = hub
        self.routing = routing
        self.console = console
        aws = hub.aws
        self.sqs = aws.client("sqs")
        # A short visibility timeout: a failed record is retried within seconds, and is visible again (so it can
        # be saved) soon after Ctrl-C.
        self.queues = localrun.create_queues(self.sqs, aws.prefix, visibility_timeout=VISIBILITY_SECONDS)
        if aws.state_dir is not None:
            localrun.load_queues(self.sqs, self.queues, aws.state_dir / "queues")
        settings = wiring.Settings(
            state_table=aws.table_name("state"),
            registry_table=aws.table_name("registry"),
            objects_table=aws.table_name("objects"),
            raw_bucket=aws.buckets[RAW_BUCKET],
            quarantine_bucket=aws.buckets[QUARANTINE_BUCKET],
            envelopes_queue_url=self.queues["envelopes"],
            deliveries_queue_url=self.queues["deliveries"],
            endpoint_url=aws.endpoint,
            region=REGION,
            config_ttl_seconds=0,  # `routing` caches already
        )
        config, _ = routing.current()
        wiring.use(
            wiring.Wiring(
                settings,
                session=embedded_session(),
                state=aws.state,
                blobs=aws.blobs,
                config_source=routing.current,
                seal_key=seal_key(config, aws.state_dir),
            )
        )
        self._last_problem: dict[str, str] = {}  # said once per connector until it changes
        self._logins_of = ""

    def keep_logins(self, config: HubConfig, version: str) -> None:
        """Store the TAXII logins' and the operator token's hashes from this process's environment whenever the
        config version changes."""
        if version == self._logins_of:
            return
        from connectors.taxii_server.credentials import provision
        from local.onboard import store_operator_token

        store_operator_token(self.hub.aws.state)
        missing = provision(config, self.hub.aws.state)
        if missing:
            self.console.print(f"[yellow]TAXII logins without a password in the environment: {', '.join(missing)}")
        self._logins_of = version

    def run(self, job: Job) -> None:
        context = self._localrun.LocalContext
        if job.location is None:
            answer = self._poller.lambda_handler(
                self._localrun.scheduled_event(job.connector_id), context("renkei-poller", timeout_seconds=300)
            )
            if answer.get("status") == "ok":
                self._last_problem.pop(job.connector_id, None)
                if answer.get("objects"):
                    self.console.print(f"{job.connector_id}: {_short(answer)}", highlight=False)
            else:
                self._problem(job.connector_id, str(answer.get("status")))
            return
        raw_bucket = self.hub.aws.buckets[RAW_BUCKET]
        answer = self._localrun.take_mail_file(
            self.hub.aws.s3, raw_bucket, job.connector_id, Path(job.location), self._mail.lambda_handler
        )
        self.console.print(f"{job.connector_id}: {Path(job.location).name}: {answer.get('status')}", highlight=False)
        if job.done is not None:
            job.done()

    def expire(self) -> None:
        """Pending inputs past their time are dropped, and their members told (on AWS: a scheduled function)."""
        for item in self._runs.expire_pending(self._wiring.current()):
            self.console.print(f"{item.connector}: {item.pending_id} expired without approval", highlight=False)

    def drain(self) -> int:
        """One batch from each queue; returns how many records were handled."""
        handled = 0
        for queue_name, handler in (("envelopes", self._router), ("deliveries", self._deliver)):
            count, failed = self._localrun.drain_once(self.sqs, self.queues[queue_name], handler.lambda_handler, 0)
            handled += count
            if failed:
                self.console.print(f"[yellow]{queue_name}[/yellow]: {failed} record(s) failed; retried later")
        return handled

    def close(self) -> None:
        """Queued work survives the stop: moto keeps queues in memory, so they are saved beside the state."""
        if self.hub.aws.state_dir is not None:
            self._wait_for_in_flight()
            saved = self._localrun.save_queues(self.sqs, self.queues, self.hub.aws.state_dir / "queues")
            if saved:
                self.console.print(f"{saved} queued record(s) kept for the next start")

    def _wait_for_in_flight(self) -> None:
        """A record that failed is invisible until its timeout ends; saving before would lose it."""
        deadline = time.monotonic() + VISIBILITY_SECONDS + 5
        while time.monotonic() < deadline:
            in_flight = sum(
                int(
                    self.sqs.get_queue_attributes(
                        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
                    )["Attributes"]["ApproximateNumberOfMessagesNotVisible"]
                )
                for url in self.queues.values()
            )
            if not in_flight:
                return
            time.sleep(0.5)

    def _problem(self, connector_id: str, problem: str) -> None:
        if self._last_problem.get(connector_id) != problem:
            self._last_problem[connector_id] = problem
            self.console.print(f"[yellow]{connector_id}[/yellow]: {problem}", highlight=False)


def _quiet_powertools() -> None:
    """Handlers log JSON and emit metrics to stdout for CloudWatch; on a terminal, only warnings are useful."""
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "renkei")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Renkei")
    warnings.filterwarnings("ignore", message="No application metrics to publish")


def _short(summary: dict[str, object]) -> str:
    keys = ("objects", "delivered", "withheld", "pending", "quarantined", "duplicate")
    return ", ".join(f"{summary[k]} {k}" for k in keys if summary[k])


def run_loop(
    worker: Worker,
    scheduler: Scheduler,
    watcher: MailWatcher,
    stop: threading.Event,
    save: Callable[[], None],
    tick_seconds: float = 1.0,
) -> None:
    """Until `stop`: enqueue what is due, run what is queued, save now and then.

    On stop: drain the queues for a few seconds, then save; what is still queued is kept for the next start.
    """
    last_save = last_expiry = time.monotonic()
    while not stop.is_set():
        config, version = worker.routing.current()
        now = time.monotonic()
        scheduler.tick(config, now)
        watcher.tick(config)
        try:
            job = scheduler.jobs.get(timeout=0 if worker.drain() else tick_seconds)
        except queue.Empty:
            job = None
        worker.keep_logins(config, version)
        if job is not None:
            worker.run(job)
        if time.monotonic() - last_expiry >= EXPIRE_EVERY_SECONDS:
            worker.expire()
            last_expiry = time.monotonic()
        if time.monotonic() - last_save >= SAVE_EVERY_SECONDS:
            save()
            last_save = time.monotonic()
    # What routing already queued is usually seconds from done: finish it, within bounds, before saving the rest.
    deadline = time.monotonic() + DRAIN_ON_STOP_SECONDS
    while time.monotonic() < deadline and worker.drain():
        pass
    worker.close()
    save()


def serve(routing: Routing, state_dir: Path | None, base: Path, host: str, port: int, console: Console) -> None:
    """Run until Ctrl-C or SIGTERM."""
    from local.runtime import embedded_hub

    config, version = routing.current()
    with embedded_hub(config, state_dir, config_version=version, owns_registry=routing.fixed is None) as hub:
        stop = threading.Event()
        jobs: queue.Queue[Job] = queue.Queue()
        worker = Worker(hub, routing, console)
        done_dir = (state_dir or base) / "mail-done"
        save = hub.aws.save if state_dir is not None else (lambda: None)
        console.print(f"[dim]embedded AWS (moto) on {hub.aws.endpoint}[/dim]")
        console.print(f"serving {config.hub.id} under {version}; Ctrl-C to stop")
        api = _serve_http(host, port)
        console.print(f"HTTP API (TAXII 2.1 at /taxii2/, peer inbox, health) on http://{host}:{api.server_address[1]}")
        try:
            with _stop_on_signals(stop, console):
                run_loop(worker, Scheduler(jobs), MailWatcher(jobs, done_dir), stop, save)
        finally:
            api.shutdown()
        console.print("stopped; state saved" if state_dir is not None else "stopped")


def _serve_http(host: str, port: int) -> ThreadingHTTPServer:
    """The API handler behind a small HTTP server, with the events API Gateway would send."""
    from functions import localrun
    from functions.api import handler as api
    from local.http_adapter import serve_api

    return serve_api(lambda event, _: api.lambda_handler(event, localrun.LocalContext("renkei-api")), host, port)


@contextmanager
def _stop_on_signals(stop: threading.Event, console: Console) -> Iterator[None]:
    """The first Ctrl-C (or SIGTERM) lets the running job finish; a second one interrupts at once."""

    def first(signum: int, frame: FrameType | None) -> None:
        console.print("stopping after the running job (Ctrl-C again to interrupt it)")
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {sig: signal.signal(sig, first) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
