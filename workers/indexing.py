"""The advisor's search index follows the ledger: the relay's publish callable is wrapped so
every transaction event it publishes is also noted, and a background loop indexes the noted
transactions in batches (per workspace, every INDEX_INTERVAL seconds) with the
`advisor.index_transactions` task's own code, in the process that relays (the worker in
production, the API embedded). A batch that fails is tried again in the next round; the
BM25 side needs none of this (it replays the outbox itself at search time)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from domain.advisor.analyst.provider import VOCABULARIES
from domain.advisor.retrieval.source import changed_transactions
from domain.realtime.envelope import EnvelopeError, decode
from workers.tasks import JobServices, index_transactions

log = structlog.get_logger(__name__)

INDEX_INTERVAL = 0.5
MAX_ATTEMPTS = 5
Publish = Callable[[str, Any], Awaitable[None]]


@dataclass
class IndexFeed:
    services: JobServices
    name: str = "advisor-indexer"
    pending: dict[uuid.UUID, dict[uuid.UUID, int]] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def wrap(self, publish: Publish) -> Publish:
        """`publish`, then note the transactions the event touched (after it went out)."""

        async def publish_and_note(channel: str, message: Any) -> None:
            await publish(channel, message)
            self.note(message)

        return publish_and_note

    def note(self, message: Any) -> None:
        try:
            envelope = decode(message)
        except EnvelopeError:
            return
        for workspace, ids in changed_transactions([envelope]).items():
            VOCABULARIES.forget(workspace)  # a new or renamed payee: the analyst reads again
            waiting = self.pending.setdefault(workspace, {})
            for transaction_id in ids:
                waiting.setdefault(transaction_id, 0)
            self._wake.set()

    async def flush(self) -> int:
        """Index everything noted so far; returns how many transactions were handled."""
        batches, self.pending = self.pending, {}
        handled = 0
        for workspace, ids in batches.items():
            try:
                await index_transactions(workspace, list(ids), self.services)
                handled += len(ids)
            except Exception:
                retry = {i: tries + 1 for i, tries in ids.items() if tries + 1 < MAX_ATTEMPTS}
                log.exception("advisor_indexing_failed", workspace=str(workspace), retry=len(retry))
                if retry:
                    self.pending.setdefault(workspace, {}).update(retry)
        return handled

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            waiting = asyncio.create_task(self._wake.wait())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            stopping.cancel()
            self._wake.clear()
            await asyncio.sleep(INDEX_INTERVAL)  # gather a batch
            await self.flush()
        await self.flush()
