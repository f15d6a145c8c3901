"""The taskiq broker, built from settings.

Production (`worker_mode` "external"): taskiq-redis's `RedisStreamBroker`. A worker reads
the stream through a consumer group and acknowledges a message only after its task has
run; a message left unacknowledged (its worker died) is claimed by another worker after
`worker_reclaim_idle_seconds` and runs again. Embedded: taskiq's `InMemoryBroker`, which
runs a task in the process that sends it, as an asyncio task. Either way every task is
retried with exponential backoff, then logged as dead-lettered.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import structlog
from taskiq import AsyncBroker, InMemoryBroker
from taskiq.exceptions import NoResultError
from taskiq.kicker import AsyncKicker
from taskiq.message import TaskiqMessage
from taskiq.middlewares import SmartRetryMiddleware
from taskiq.result import TaskiqResult
from taskiq_redis import RedisStreamBroker

from domain.core.settings import Settings

log = structlog.get_logger(__name__)


class BackoffRetryMiddleware(SmartRetryMiddleware):
    """taskiq's retry middleware with a true exponential backoff that waits in the worker.

    taskiq's own `use_delay_exponent` grows linearly (delay * attempt), and without a
    schedule source it only sets a `delay` label that the Redis and in-memory brokers
    ignore. Here the failed run waits out the delay and then sends the retry: its message
    stays unacknowledged meanwhile, so a worker that dies during the wait loses nothing
    (the message is claimed again). The cost is one concurrency slot held per waiting retry.
    """

    def make_delay(self, message: TaskiqMessage, retries: int) -> float:
        base = float(message.labels.get("delay", self.default_delay))
        delay = min(base * 2 ** (retries - 1), self.max_delay_exponent)
        if self.use_jitter:
            delay += random.random()  # spreads retries of a burst of failures
        return delay

    async def on_send(
        self, kicker: AsyncKicker[Any, Any], message: TaskiqMessage, delay: float
    ) -> None:
        await asyncio.sleep(delay)
        await kicker.kiq(*message.args, **message.kwargs)

    async def on_error(
        self, message: TaskiqMessage, result: TaskiqResult[Any], exception: BaseException
    ) -> None:
        attempt = int(message.labels.get("_retries", 0)) + 1
        attempts = int(message.labels.get("max_retries", self.default_retry_count))
        if not isinstance(exception, NoResultError):
            log.warning(
                "task_failed",
                task=message.task_name,
                task_id=message.task_id,
                attempt=attempt,
                of=attempts,
                error=f"{type(exception).__name__}: {exception}",
            )
        await super().on_error(message, result, exception)
        if isinstance(exception, NoResultError):
            return
        if not self.is_retry_on_error(message) or attempt >= attempts:
            # The dead letter: nothing retries this task again; an operator re-sends it.
            log.error(
                "task_dead_lettered",
                task=message.task_name,
                task_id=message.task_id,
                args=message.args,
                kwargs=message.kwargs,
                attempts=attempt,
                error=f"{type(exception).__name__}: {exception}",
            )


def build_broker(settings: Settings) -> AsyncBroker:
    """The broker for `settings`, with the retry middleware and every registered task."""
    from workers.tasks import register_tasks

    broker: AsyncBroker
    if settings.resolved_worker_mode == "external":
        if not settings.redis_url:
            raise ValueError("worker_mode 'external' needs WEALTHWISE_REDIS_URL")
        broker = RedisStreamBroker(
            url=settings.redis_url,
            queue_name=settings.worker_queue,
            consumer_group_name=settings.worker_consumer_group,
            # A group made after tasks were sent still runs them (taskiq's "$" would skip).
            consumer_id="0",
            xread_block=max(1, round(settings.worker_poll_seconds * 1000)),
            idle_timeout=max(1, round(settings.worker_reclaim_idle_seconds * 1000)),
            # The reclaim lock of a worker killed while holding it expires.
            unacknowledged_lock_timeout=30,
            maxlen=settings.worker_stream_maxlen,
        )
    else:
        broker = InMemoryBroker()
    broker.add_middlewares(
        BackoffRetryMiddleware(
            default_retry_count=settings.worker_max_attempts,
            default_retry_label=True,
            default_delay=settings.worker_retry_delay_seconds,
            use_jitter=True,
            use_delay_exponent=True,
            max_delay_exponent=settings.worker_retry_max_delay_seconds,
        )
    )
    register_tasks(broker, settings)
    return broker
