"""The taskiq broker, built from settings.

Production (`worker_mode` "external"): taskiq-redis's `RedisStreamBroker` (with the fixes
of `ReclaimingStreamBroker` below). A worker reads
the stream through a consumer group and acknowledges a message only after its task has
run; a message left unacknowledged (its worker died) is claimed by another worker after
`worker_reclaim_idle_seconds` and runs again. Embedded: taskiq's `InMemoryBroker`, which
runs a task in the process that sends it, as an asyncio task. Either way every task is
retried with exponential backoff, then logged as dead-lettered.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import structlog
from redis.asyncio import Redis
from taskiq import AckableMessage, AsyncBroker, InMemoryBroker
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


class ReclaimingStreamBroker(RedisStreamBroker):
    """taskiq-redis's stream broker, with fixes to how it takes back the messages of a
    dead worker and survives Redis (hand-written: taskiq-redis 1.2.4 has none of them;
    its PR #129 reworks reclaiming and is still open).

    - It looks for reclaimable messages after every read, also an empty one: upstream only
      looks after a read that returned new messages, so on a quiet queue a dead worker's
      task waited for unrelated traffic.
    - It declares its consumer group whenever it starts listening, so a worker outlives
      a Redis that restarted empty.
    - A worker keeps its running messages claimed (XCLAIM ... JUSTID every poll, which
      resets their idle time): only a dead worker's messages go idle for
      `idle_timeout`, so that setting bounds how soon a crash is recovered, not how long a
      task may run. XAUTOCLAIM is atomic, so no lock is needed around it.
    """

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self._running: set[tuple[str, str]] = set()  # (stream, message id) not yet acked

    def _ack_generator(self, id: str, queue_name: str) -> Callable[[], Awaitable[None]]:
        ack = super()._ack_generator(id, queue_name)
        self._running.add((_text(queue_name), _text(id)))

        async def _ack() -> None:
            await ack()
            self._running.discard((_text(queue_name), _text(id)))

        return _ack

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        streams = {self.queue_name: ">", **self.additional_streams}
        # Again on every (re)start of listening: a Redis restarted without its data has
        # lost the group, and reads would fail with NOGROUP until it exists.
        await self._declare_consumer_group()
        keeping = asyncio.create_task(self._keep_running_claimed())
        try:
            async with Redis(connection_pool=self.connection_pool) as redis:
                while True:
                    fetched: Any = await redis.xreadgroup(
                        self.consumer_group_name,
                        self.consumer_name,
                        streams,  # type: ignore[arg-type]
                        block=self.block,
                        count=self.count,
                    )
                    for stream, entries in fetched or []:
                        for message_id, fields in entries:
                            yield self._message(stream, message_id, fields)
                    for stream in streams:
                        _, claimed, *_ = await redis.xautoclaim(
                            stream,
                            self.consumer_group_name,
                            self.consumer_name,
                            min_idle_time=self.idle_timeout,
                            count=self.unacknowledged_batch_size,
                        )
                        for message_id, fields in claimed:
                            if (stream, _text(message_id)) in self._running or fields is None:
                                continue  # our own running task, or trimmed away
                            log.warning("task_reclaimed", stream=stream, message=_text(message_id))
                            yield self._message(stream, message_id, fields)
        finally:
            keeping.cancel()

    def _message(self, stream: Any, message_id: Any, fields: Any) -> AckableMessage:
        return AckableMessage(
            data=fields[b"data"], ack=self._ack_generator(id=message_id, queue_name=stream)
        )

    async def _keep_running_claimed(self) -> None:
        interval = max(self.block / 1000, 0.1)
        while True:
            await asyncio.sleep(interval)
            by_stream: dict[str, list[Any]] = {}
            for stream, message_id in list(self._running):
                by_stream.setdefault(stream, []).append(message_id)
            try:
                async with Redis(connection_pool=self.connection_pool) as redis:
                    for stream, ids in by_stream.items():
                        await redis.xclaim(
                            stream,
                            self.consumer_group_name,
                            self.consumer_name,
                            min_idle_time=0,
                            message_ids=ids,
                            justid=True,
                        )
            except Exception as error:  # Redis away: the listener reports it; try again
                log.warning("task_claim_refresh_failed", error=repr(error))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def build_broker(settings: Settings) -> AsyncBroker:
    """The broker for `settings`, with the retry middleware and every registered task."""
    import workers.advisor  # noqa: F401  (declares its tasks)
    from workers.tasks import register_tasks

    broker: AsyncBroker
    if settings.resolved_worker_mode == "external":
        if not settings.redis_url:
            raise ValueError("worker_mode 'external' needs WEALTHWISE_REDIS_URL")
        broker = ReclaimingStreamBroker(
            url=settings.redis_url,
            queue_name=settings.worker_queue,
            consumer_group_name=settings.worker_consumer_group,
            # A group made after tasks were sent still runs them (taskiq's "$" would skip).
            consumer_id="0",
            xread_block=max(1, round(settings.worker_poll_seconds * 1000)),
            idle_timeout=max(1, round(settings.worker_reclaim_idle_seconds * 1000)),
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
