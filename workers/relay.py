"""The outbox relay as a background loop of `wealthwise worker`: it publishes committed
events to Redis, where every API process's hub fans them out. Embedded (no worker), the
API's lifespan runs the relay itself, publishing straight into its own hub."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from broadcaster import Broadcast

from domain.core.settings import Settings
from domain.realtime.relay import Relay
from workers.indexing import IndexFeed
from workers.runtime import BackgroundLoop, background_loop
from workers.tasks import JobServices


@dataclass
class RelayLoop:
    settings: Settings
    services: JobServices
    name: str = "outbox-relay"

    async def run(self, stop: asyncio.Event) -> None:
        assert self.settings.redis_url  # external mode needs Redis (the worker checks)
        broadcast = Broadcast(self.settings.redis_url)
        await broadcast.connect()
        # The advisor's search index follows what the relay publishes (workers/indexing.py).
        feed = IndexFeed(self.services)
        relay = Relay.from_settings(
            self.services.engine, feed.wrap(broadcast.publish), self.settings
        )
        indexing = asyncio.create_task(feed.run(stop))
        relay.start()
        try:
            await stop.wait()
        finally:
            await relay.stop()
            await indexing
            await broadcast.disconnect()


@background_loop
def outbox_relay(settings: Settings, services: JobServices) -> BackgroundLoop | None:
    if settings.resolved_worker_mode != "external":
        return None  # the API process relays into its own hub
    return RelayLoop(settings, services)
