"""What `wealthwise worker` runs, in one process: the broker's consumers (taskiq's
`Receiver`), the scheduler (taskiq's `TaskiqScheduler` over `LabelScheduleSource`: the
`schedule` labels of the registered tasks) and the background loops (the outbox relay).
Embedded, the API's lifespan runs the background loops itself (`EmbeddedJobs`)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from taskiq import AsyncBroker, InMemoryBroker, TaskiqScheduler
from taskiq.api import run_scheduler_task
from taskiq.receiver import Receiver
from taskiq.schedule_sources import LabelScheduleSource

from domain.advisor.retrieval.holder import preload as preload_search
from domain.core.db import create_engine
from domain.core.keys import Keyring
from domain.core.settings import Settings
from workers.broker import build_broker
from workers.tasks import JobServices, attach_services

log = structlog.get_logger(__name__)
RESTART_MIN_SECONDS = 0.5
RESTART_MAX_SECONDS = 30.0


class BackgroundLoop(Protocol):
    """Long-running work beside the tasks (the outbox relay): runs until `stop` is set,
    then returns promptly. An exception restarts it after a backoff."""

    name: str

    async def run(self, stop: asyncio.Event) -> None: ...


# A factory may answer None: no such loop under these settings.
LoopFactory = Callable[[Settings, JobServices], BackgroundLoop | None]
LOOP_FACTORIES: list[LoopFactory] = []


def background_loop(factory: LoopFactory) -> LoopFactory:
    """Declare a background loop (e.g. the outbox relay): the worker runs one per process,
    and so does the API's lifespan when jobs are embedded."""
    if factory not in LOOP_FACTORIES:
        LOOP_FACTORIES.append(factory)
    return factory


def background_loops(settings: Settings, services: JobServices) -> list[BackgroundLoop]:
    loops = (factory(settings, services) for factory in LOOP_FACTORIES)
    return [loop for loop in loops if loop is not None]


async def supervise(loop: BackgroundLoop, stop: asyncio.Event) -> None:
    """Run `loop` until `stop`; restart it with backoff when it fails or returns early."""
    delay = RESTART_MIN_SECONDS
    while not stop.is_set():
        try:
            await loop.run(stop)
            if stop.is_set():
                return
            log.warning("background_loop_returned", loop=loop.name)
        except Exception:
            log.exception("background_loop_failed", loop=loop.name, restart_in=delay)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await stop.wait()
        delay = min(delay * 2, RESTART_MAX_SECONDS)


async def finish(tasks: Sequence[asyncio.Task[None]], grace_seconds: float) -> None:
    """Wait for stopping tasks; cancel those still running after `grace_seconds`."""
    if not tasks:
        return
    _, late = await asyncio.wait(tasks, timeout=grace_seconds)
    for task in late:
        log.warning("background_task_cancelled", task=task.get_name())
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def import_task_modules(modules: Sequence[str]) -> None:
    """Import modules that declare more tasks (`@job`) before the broker is built."""
    for module in modules:
        importlib.import_module(module)


@dataclass
class Worker:
    """One worker process's runtime; `run(stop)` returns after a graceful shutdown."""

    settings: Settings
    concurrency: int = 10
    scheduler: bool = True

    async def run(self, stop: asyncio.Event) -> None:
        preload_search()  # its imports would otherwise stall the relay on the first index
        engine = create_engine(self.settings)
        broker = build_broker(self.settings)
        broker.is_worker_process = True
        services = JobServices(self.settings, engine, Keyring.from_settings(self.settings))
        attach_services(broker, services)
        background = background_loops(self.settings, services)
        await broker.startup()
        finished = asyncio.Event()
        log.info(
            "worker_started",
            mode=self.settings.resolved_worker_mode,
            queue=self.settings.worker_queue,
            concurrency=self.concurrency,
            scheduler=self.scheduler,
            loops=[loop.name for loop in background],
        )
        consumers = asyncio.create_task(self._consume(broker, finished))
        loops = [asyncio.create_task(supervise(loop, stop)) for loop in background]
        scheduling = asyncio.create_task(self._schedule(broker)) if self.scheduler else None
        try:
            await stop.wait()
        finally:
            log.info("worker_stopping")
            finished.set()  # the receiver stops fetching and lets running tasks finish
            if scheduling is not None:
                scheduling.cancel()
            # The receiver bounds its own wait for running tasks (worker_shutdown_seconds).
            await finish([consumers, *loops], self.settings.worker_shutdown_seconds + 5)
            if scheduling is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await scheduling
            await broker.shutdown()
            await engine.dispose()
            log.info("worker_stopped")

    async def _consume(self, broker: AsyncBroker, finished: asyncio.Event) -> None:
        """taskiq's Receiver over the broker; after a broker error (Redis gone) a new one
        listens again, as `taskiq.api.run_receiver_task` does."""
        delay = RESTART_MIN_SECONDS
        with ThreadPoolExecutor(max_workers=2) as executor:
            while not finished.is_set():
                receiver = Receiver(
                    broker,
                    executor=executor,
                    run_startup=False,
                    max_async_tasks=self.concurrency,
                    wait_tasks_timeout=self.settings.worker_shutdown_seconds,
                )
                try:
                    await receiver.listen(finished)
                    delay = RESTART_MIN_SECONDS
                except Exception as error:
                    log.warning("worker_listen_failed", error=repr(error), retry_in=delay)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await finished.wait()
                    delay = min(delay * 2, RESTART_MAX_SECONDS)

    async def _schedule(self, broker: AsyncBroker) -> None:
        scheduler = TaskiqScheduler(broker, [LabelScheduleSource(broker)])
        await run_scheduler_task(scheduler)


@dataclass
class ApiJobs:
    """The API process's side of the jobs. `broker` sends tasks (the API's lifespan state
    holds it as "jobs"). Embedded, the in-memory broker runs a sent task right here as an
    asyncio task, and the API runs the background loops; external, the broker only writes
    to the Redis stream (no Redis I/O at start: the API starts without Redis)."""

    broker: AsyncBroker
    embedded: bool
    shutdown_seconds: float = 30
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _running: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self, loops: Sequence[BackgroundLoop]) -> None:
        if self.embedded:
            await self.broker.startup()
            self._running = [asyncio.create_task(supervise(loop, self._stop)) for loop in loops]

    async def stop(self) -> None:
        self._stop.set()
        await finish(self._running, self.shutdown_seconds)
        if isinstance(self.broker, InMemoryBroker):
            try:
                async with asyncio.timeout(self.shutdown_seconds):
                    await self.broker.wait_all()
            except TimeoutError:
                log.warning("embedded_tasks_abandoned")
        await self.broker.shutdown()


async def start_jobs(services: JobServices) -> ApiJobs:
    broker = build_broker(services.settings)
    attach_services(broker, services)
    jobs = ApiJobs(
        broker,
        embedded=services.settings.resolved_worker_mode == "embedded",
        shutdown_seconds=services.settings.worker_shutdown_seconds,
    )
    await jobs.start(background_loops(services.settings, services) if jobs.embedded else [])
    return jobs
