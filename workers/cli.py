"""`wealthwise worker`: consumers, scheduler and background loops in one process."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from api.logging import configure_logging
from domain.core.settings import get_settings
from workers.runtime import Worker, import_task_modules


def worker(
    concurrency: int = typer.Option(10, min=1, help="Tasks run at once by this process."),
    scheduler: bool = typer.Option(
        True, help="Also send the periodic tasks (run it in one worker of a deployment)."
    ),
    task_module: Annotated[
        list[str] | None,
        typer.Option("--import", help="Import MODULE first (it declares more tasks or loops)."),
    ] = None,
) -> None:
    """Run the background worker: task consumers, the scheduler and the background loops."""
    settings = get_settings()
    configure_logging(settings)
    if settings.resolved_worker_mode != "external":
        raise typer.BadParameter(
            "the worker consumes the Redis task stream: set WEALTHWISE_REDIS_URL "
            "(embedded, the API runs the jobs itself)"
        )
    # The outbox relay is always one of the worker's loops; --import adds more.
    import_task_modules(["workers.relay", *(task_module or [])])
    asyncio.run(_run(Worker(settings, concurrency=concurrency, scheduler=scheduler)))


async def _run(runtime: Worker) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await runtime.run(stop)
