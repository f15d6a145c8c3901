"""The analyst's vocabulary cache: per workspace, bounded, expiring, and dropped when the
relay publishes a transaction event of that workspace."""

from __future__ import annotations

import datetime as dt
import time
import uuid

from domain.advisor.analyst import Vocabulary
from domain.advisor.analyst.names import Name
from domain.advisor.analyst.provider import VOCABULARIES, VocabularyCache
from domain.realtime.envelope import Envelope, encode
from workers.indexing import IndexFeed
from workers.tasks import JobServices


def vocabulary(name: str) -> Vocabulary:
    return Vocabulary([Name(name, name, "payee")])


def test_entries_are_per_workspace_bounded_and_expire() -> None:
    cache = VocabularyCache(ttl=60, size=2)
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    cache.put(a, vocabulary("A"))
    cache.put(b, vocabulary("B"))
    assert cache.get(a) is not None and cache.get(c) is None
    cache.put(c, vocabulary("C"))  # b is the least recently used now
    assert cache.get(b) is None and cache.get(a) is not None and cache.get(c) is not None
    cache.ttl = 0.01
    time.sleep(0.02)
    assert cache.get(a) is None


def test_a_published_transaction_event_drops_its_workspace_only() -> None:
    mine, other = uuid.uuid4(), uuid.uuid4()
    VOCABULARIES.put(mine, vocabulary("Old payee"))
    VOCABULARIES.put(other, vocabulary("Other"))
    feed = IndexFeed(JobServices.__new__(JobServices))
    event = Envelope(
        workspace_id=mine,
        seq=7,
        type="transaction.posted",
        data={
            "transaction": str(uuid.uuid4()),
            "accounts": [],
            "categories": [],
            "date": "2026-11-30",
        },
        at=dt.datetime.now(dt.UTC),
    )
    feed.note(encode(event))
    assert VOCABULARIES.get(mine) is None
    assert VOCABULARIES.get(other) is not None
    assert list(feed.pending[mine]) == [uuid.UUID(event.data["transaction"])]
