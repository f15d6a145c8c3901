"""The task registry and the tasks themselves (thin: they call the domain).

A task is an async function declared with `@job(name)`; `build_broker` registers every
declared task on the broker it builds, so no broker lives in a module global. Its
dependencies (engine, keyring, settings) come from the broker's state through taskiq's
dependency injection: `services: Annotated[JobServices, TaskiqDepends(job_services)]`.

The pattern every task follows (other issues add theirs here or in a module imported by
the worker):
- it takes ids (strings, UUIDs, numbers), never objects: the message is JSON;
- it opens its own `unit_of_work` and scopes it with `bind_scope` before touching rows
  (PostgreSQL row-level security hides everything else from the app role);
- it is idempotent: a retry, or a second run after a worker crash, changes nothing more.

Send one with `await enqueue(broker, seal_audit_chain, workspace_id)`. Embedded (the
in-memory broker) it runs in the sending process as an asyncio task; in production a
`wealthwise worker` runs it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, ParamSpec

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import AsyncBroker, TaskiqDepends, TaskiqState

from domain.advisor.retrieval.holder import SearchHolder
from domain.advisor.retrieval.source import indexing_tenant
from domain.audit.service import seal, seal_all
from domain.core.db import bind_scope, unit_of_work
from domain.core.keys import Keyring
from domain.core.settings import Settings

log = structlog.get_logger(__name__)
P = ParamSpec("P")
Schedule = Callable[[Settings], list[dict[str, Any]]]


@dataclass(frozen=True)
class JobServices:
    """What tasks need, held in the broker's state (one per process)."""

    settings: Settings
    engine: AsyncEngine
    keyring: Keyring
    # The advisor's hybrid search, opened on first use and shared by the process's tasks
    # (embedded, Qdrant Edge's shard can be open only once per process).
    retrieval: SearchHolder = field(default_factory=SearchHolder)


def job_services(state: Annotated[TaskiqState, TaskiqDepends()]) -> JobServices:
    services: JobServices = state.services
    return services


def attach_services(broker: AsyncBroker, services: JobServices) -> None:
    broker.state.services = services


@dataclass(frozen=True)
class JobDefinition:
    name: str
    function: Callable[..., Awaitable[Any]]
    # Settings -> taskiq `schedule` label entries ({"interval": seconds} or {"cron": ...});
    # an empty list: not periodic under these settings.
    schedule: Schedule | None = None
    labels: dict[str, Any] = field(default_factory=dict)


JOBS: dict[str, JobDefinition] = {}


def job(
    name: str, *, schedule: Schedule | None = None, **labels: Any
) -> Callable[[Callable[P, Awaitable[Any]]], Callable[P, Awaitable[Any]]]:
    """Declare a task under a stable name (the name is what the queue carries)."""

    def declare(function: Callable[P, Awaitable[Any]]) -> Callable[P, Awaitable[Any]]:
        if name in JOBS and JOBS[name].function is not function:
            raise ValueError(f"two tasks named {name!r}")
        JOBS[name] = JobDefinition(name, function, schedule, labels)
        return function

    return declare


def register_tasks(broker: AsyncBroker, settings: Settings) -> None:
    for definition in JOBS.values():
        labels = dict(definition.labels)
        schedule = definition.schedule(settings) if definition.schedule else []
        if schedule:
            labels["schedule"] = schedule
        broker.register_task(definition.function, task_name=definition.name, **labels)


def name_of(function: Callable[..., Awaitable[Any]]) -> str:
    for definition in JOBS.values():
        if definition.function is function:
            return definition.name
    raise LookupError(f"{function.__qualname__} is not a declared task")


async def enqueue(
    broker: AsyncBroker, function: Callable[P, Awaitable[Any]], *args: P.args, **kwargs: P.kwargs
) -> str:
    """Send a declared task; returns its task id. Send after the request's commit."""
    task = broker.find_task(name_of(function))
    if task is None:
        raise LookupError(f"{name_of(function)} is not registered on this broker")
    sent = await task.kiq(*args, **kwargs)
    return sent.task_id


def _audit_sealing_schedule(settings: Settings) -> list[dict[str, Any]]:
    seconds = round(settings.audit_checkpoint_minutes * 60)
    return [{"interval": max(1, seconds), "schedule_id": "seal-audit-chains"}] if seconds else []


@job("audit.seal_chains", schedule=_audit_sealing_schedule)
async def seal_audit_chains(
    services: Annotated[JobServices, TaskiqDepends(job_services)],
) -> int:
    """Sign the head of every audit chain that moved since its last checkpoint."""
    sealed = await seal_all(services.engine, services.keyring)
    if sealed:
        log.info("audit_sealed", chains=len(sealed))
    return len(sealed)


@job("audit.seal_chain")
async def seal_audit_chain(
    workspace_id: uuid.UUID,
    services: Annotated[JobServices, TaskiqDepends(job_services)],
) -> int:
    """Seal one workspace's chain: the pattern (ids in, own scoped transaction, idempotent:
    sealing an unmoved head returns the existing checkpoint). Returns the sealed seq."""
    async with unit_of_work(services.engine) as session:
        await bind_scope(session, workspace_id=workspace_id)
        checkpoint = await seal(session, services.keyring, workspace_id)
    return checkpoint.seq


@job("advisor.index_transactions")
async def index_transactions(
    workspace_id: uuid.UUID,
    transaction_ids: list[uuid.UUID],
    services: Annotated[JobServices, TaskiqDepends(job_services)],
) -> int:
    """Bring these transactions' search entries up to date (fed by transaction.posted /
    edited / deleted events): upsert the ones that exist, remove the rest. Idempotent.
    Returns how many entries were written or removed."""
    search = await services.retrieval.get(services.settings, services.engine, services.keyring)
    async with unit_of_work(services.engine, write=False) as session:
        tenant = await indexing_tenant(session, services.keyring, workspace_id)
        report = await search.update_transactions(session, tenant, transaction_ids)
    return report.indexed + report.removed


@job("advisor.reindex_workspace")
async def reindex_workspace(
    workspace_id: uuid.UUID,
    services: Annotated[JobServices, TaskiqDepends(job_services)],
) -> int:
    """Rebuild one workspace's search entries; returns the number indexed."""
    search = await services.retrieval.get(services.settings, services.engine, services.keyring)
    async with unit_of_work(services.engine, write=False) as session:
        tenant = await indexing_tenant(session, services.keyring, workspace_id)
        report = await search.index_workspace(session, tenant)
    return report.indexed
