"""`gateway serve`: the hub on one machine. Pollers on their schedules, mail dropped into a folder, the HTTP
API, all on the embedded default; routing re-read from the registry every few seconds, so an onboarded
change is in force without a restart.

One worker thread runs every job in turn (a poll, a mail file), so the pipeline never races itself; the
scheduler and the folder watcher only enqueue. Ctrl-C lets the running job finish, saves the state and
stops: polls not yet run run at the next start, mail not yet read is still in its folder.
"""

from __future__ import annotations

import queue
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from rich.console import Console

from connectors.sources import source_for
from gateway.errors import RenkeiError, SourceUnavailable
from gateway.intake import take
from gateway.pipeline import Pipeline, RunResult
from local.onboard import load_registry
from local.runtime import EmbeddedHub, LiveChannels, seal_key
from schemas.config import EmailConnector, FeedConnector, HubConfig, StixConnector, TaxiiConnector, parse_duration

ROUTING_TTL_SECONDS = 5.0  # how long a narrowed scope may take to be in force
SAVE_EVERY_SECONDS = 30.0
MAIL_SUFFIXES = (".eml",)


class Routing:
    """The routing in force: a fixed --config, or the registry onboarded into --state, re-read when stale."""

    def __init__(self, fixed: tuple[HubConfig, str] | None, state_dir: Path | None, ttl: float = ROUTING_TTL_SECONDS):
        if fixed is None and state_dir is None:
            raise ValueError("serve needs --config or an onboarded --state")
        self._fixed = fixed
        self._state_dir = state_dir
        self._ttl = ttl
        self._cached: tuple[HubConfig, str] | None = fixed
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
            self._cached = onboarded[1], f"registry:{onboarded[0]}"
            self._read_at = time.monotonic()
        return self._cached


@dataclass(frozen=True)
class Job:
    """Read one connector's inputs at `location` (None: its configured source)."""

    connector_id: str
    location: str | None = None
    done: Callable[[], None] | None = None  # after a successful run, e.g. move the mail file away


def pollable(config: HubConfig) -> dict[str, float]:
    """Connector id -> polling interval in seconds, for connectors that have something to poll on a schedule.

    Mail folders are watched instead (every file once), and peers push.
    """
    intervals = {}
    for connector in config.connectors:
        if connector.every is None:
            continue
        polls = isinstance(connector, FeedConnector | StixConnector) and bool(connector.source)
        polls = polls or (isinstance(connector, TaxiiConnector) and connector.direction in ("pull", "both"))
        if polls:
            intervals[connector.id] = parse_duration(connector.every).total_seconds()
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
    base: Path
    queued: set[Path] = field(default_factory=set)

    def tick(self, config: HubConfig) -> None:
        for connector in config.connectors:
            if not isinstance(connector, EmailConnector) or not connector.source:
                continue
            folder = Path(connector.source) if Path(connector.source).is_absolute() else self.base / connector.source
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
    """Runs jobs one at a time on the pipeline of the routing in force. A failing job never stops it."""

    def __init__(self, hub: EmbeddedHub, routing: Routing, base: Path, console: Console) -> None:
        self.hub = hub
        self.routing = routing
        self.base = base
        self.console = console
        self._pipelines: dict[str, Pipeline] = {}
        self._last_problem: dict[str, str] = {}  # said once per connector until it changes

    def pipeline(self) -> tuple[HubConfig, Pipeline]:
        config, version = self.routing.current()
        if version not in self._pipelines:
            self._pipelines = {  # one per config version; the old one is never used again
                version: Pipeline(
                    config,
                    self.hub.aws.state,
                    self.hub.aws.blobs,
                    LiveChannels(config, self.hub.collections),
                    seal_key=seal_key(config, self.hub.aws.state_dir),
                    config_version=version,
                )
            }
        return config, self._pipelines[version]

    def run(self, job: Job) -> RunResult | None:
        config, pipeline = self.pipeline()
        connector = config.connector(job.connector_id)
        if connector is None:  # removed by onboarding since the job was queued
            return None
        total = RunResult()
        try:
            for intake in source_for(config, connector, self.hub.aws.state, self.base).read(job.location):
                total.merge(take(pipeline, config, connector.id, intake))
        except SourceUnavailable as exc:
            self._problem(job.connector_id, str(exc))
            return None
        except Exception as exc:  # noqa: BLE001 - a worker keeps going; the type, never the content, is logged
            self._problem(job.connector_id, f"failed ({type(exc).__name__})")
            return None
        self._last_problem.pop(job.connector_id, None)
        if job.done is not None:
            job.done()
        counts = total.summary()
        if counts["objects"]:
            self.console.print(f"{job.connector_id}: {_short(counts)}", highlight=False)
        return total

    def _problem(self, connector_id: str, problem: str) -> None:
        if self._last_problem.get(connector_id) != problem:
            self._last_problem[connector_id] = problem
            self.console.print(f"[yellow]{connector_id}[/yellow]: {problem}", highlight=False)


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
    """Until `stop`: enqueue what is due, run what is queued, save now and then. Saves once more at the end."""
    last_save = time.monotonic()
    while not stop.is_set():
        config, _ = worker.routing.current()
        now = time.monotonic()
        scheduler.tick(config, now)
        watcher.tick(config)
        try:
            job = scheduler.jobs.get(timeout=tick_seconds)
        except queue.Empty:
            job = None
        if job is not None:
            worker.run(job)
        if time.monotonic() - last_save >= SAVE_EVERY_SECONDS:
            save()
            last_save = time.monotonic()
    save()


def serve(routing: Routing, state_dir: Path | None, base: Path, host: str, port: int, console: Console) -> None:
    """Run until Ctrl-C or SIGTERM."""
    from local.runtime import embedded_hub

    config, version = routing.current()
    with embedded_hub(config, state_dir, config_version=version, owns_registry=routing.fixed is None) as hub:
        stop = threading.Event()
        jobs: queue.Queue[Job] = queue.Queue()
        worker = Worker(hub, routing, base, console)
        done_dir = (state_dir or base) / "mail-done"
        save = hub.aws.save if state_dir is not None else (lambda: None)
        console.print(f"[dim]embedded AWS (moto) on {hub.aws.endpoint}[/dim]")
        console.print(f"serving {config.hub.id} under {version}; Ctrl-C to stop")
        with _stop_on_signals(stop, console):
            run_loop(worker, Scheduler(jobs), MailWatcher(jobs, done_dir, base), stop, save)
        console.print("stopped; state saved" if state_dir is not None else "stopped")


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
