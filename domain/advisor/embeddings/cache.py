"""Each distinct normalised text is embedded once per model.

Vectors are cached in memory and in a SQLite file in the data dir, keyed by an HMAC of
(model id, normalised text) under a secret key: the file holds keys and vectors only,
never the text, and without the key nobody can test whether a given text is in it.
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from domain.advisor.embeddings.base import Embedder, Vector, normalise_text

MEMORY_ENTRIES = 50_000


class VectorCacheFile:
    """The persistent half: one table (key BLOB PRIMARY KEY, vector BLOB)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        path.chmod(0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL)"
        )
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[bytes], dimension: int) -> dict[bytes, Vector]:
        found: dict[bytes, Vector] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk
                ).fetchall()
                for key, blob in rows:
                    vector = np.frombuffer(blob, dtype=np.float32)
                    if vector.shape == (dimension,):
                        found[bytes(key)] = vector.tolist()
        return found

    def put_many(self, items: dict[bytes, Vector]) -> None:
        rows = [(key, np.asarray(v, dtype=np.float32).tobytes()) for key, v in items.items()]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()


class CachedEmbedder:
    """An `Embedder` in front of another: normalises, dedupes, and embeds only misses."""

    def __init__(
        self, inner: Embedder, secret: bytes, store: VectorCacheFile | None = None
    ) -> None:
        self.inner = inner
        self._secret = secret
        self._store = store
        self._memory: OrderedDict[bytes, Vector] = OrderedDict()
        self.embedded = 0  # texts sent to the model (for tests and benchmarks)

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def key(self, normalised: str) -> bytes:
        message = f"{self.model_id}\x00{normalised}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        normalised = [normalise_text(text) for text in texts]
        keys = [self.key(text) for text in normalised]
        found: dict[bytes, Vector] = {}
        for key in keys:
            if key in self._memory:
                self._memory.move_to_end(key)
                found[key] = self._memory[key]
        missing = [key for key in dict.fromkeys(keys) if key not in found]
        if missing and self._store is not None:
            found.update(self._store.get_many(missing, self.dimension))
        todo = {key: text for key, text in zip(keys, normalised, strict=True) if key not in found}
        if todo:
            vectors = await self.inner.embed(list(todo.values()))
            fresh = dict(zip(todo, vectors, strict=True))
            self.embedded += len(fresh)
            if self._store is not None:
                self._store.put_many(fresh)
            found.update(fresh)
        for key in keys:
            self._remember(key, found[key])
        return [found[key] for key in keys]

    async def aclose(self) -> None:
        """Close the cache file, and the model's HTTP client if it has one."""
        if self._store is not None:
            self._store.close()
        closer = getattr(self.inner, "aclose", None)
        if closer is not None:
            await closer()

    def _remember(self, key: bytes, vector: Vector) -> None:
        self._memory[key] = vector
        self._memory.move_to_end(key)
        while len(self._memory) > MEMORY_ENTRIES:
            self._memory.popitem(last=False)
