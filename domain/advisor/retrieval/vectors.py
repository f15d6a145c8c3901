"""The dense side's storage: Qdrant Edge in-process (embedded default) or a Qdrant server.

Points are keyed by transaction id; payloads hold the workspace id, the date (yyyymmdd)
and account/category ids: never text, never amounts. Every search and every delete is
filtered to one workspace. A collection records the embedding model and dimension that
built it, and refuses vectors of any other model.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import qdrant_edge as edge
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from domain.advisor.embeddings.base import Vector
from domain.advisor.retrieval.port import SearchFilter

WORKSPACE = "workspace_id"
DATE = "date"
ACCOUNTS = "account_ids"
CATEGORIES = "category_ids"

Point = tuple[uuid.UUID, Vector, dict[str, Any]]


class IndexMismatch(RuntimeError):
    """The collection was built by another embedding model or dimension."""


class IndexUnavailable(RuntimeError):
    """The index cannot be opened (e.g. Qdrant Edge's shard is held by another process)."""


class VectorIndex(Protocol):
    async def ensure(self, model_id: str, dimension: int) -> None:
        """Create the collection for this model, or check an existing one was built by it."""

    async def upsert(self, points: Sequence[Point]) -> None: ...

    async def delete(self, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> None: ...

    async def delete_workspace(self, workspace_id: uuid.UUID) -> None: ...

    async def ids(self, workspace_id: uuid.UUID) -> set[uuid.UUID]: ...

    async def count(self, workspace_id: uuid.UUID) -> int: ...

    async def search(
        self, workspace_id: uuid.UUID, vector: Vector, limit: int, where: SearchFilter
    ) -> list[tuple[uuid.UUID, float]]: ...

    async def payloads(self) -> list[dict[str, Any]]:
        """Every stored payload, of every workspace (audits and tests)."""

    async def drop(self) -> None:
        """Delete the whole collection (before rebuilding it for another model)."""

    async def optimize(self) -> None:
        """After a bulk load: build the search structures now, not during searches."""

    async def close(self) -> None: ...


def _check(recorded: dict[str, Any], model_id: str, dimension: int) -> None:
    if recorded.get("model_id") != model_id or recorded.get("dimension") != dimension:
        raise IndexMismatch(
            f"The vector index was built by {recorded.get('model_id')} "
            f"({recorded.get('dimension')} dims), not {model_id} ({dimension} dims): "
            "run `wealthwise advisor reindex --recreate` after changing the embedding model"
        )


# --- Qdrant Edge ---------------------------------------------------------------------------


def _edge_filter(workspace_id: uuid.UUID, where: SearchFilter | None = None) -> edge.Filter:
    must: list[Any] = [edge.FieldCondition(key=WORKSPACE, match=edge.MatchValue(str(workspace_id)))]
    if where is not None:
        if where.start is not None or where.end is not None:
            must.append(
                edge.FieldCondition(
                    key=DATE,
                    range=edge.RangeFloat(
                        gte=None if where.start is None else float(where.start),
                        lte=None if where.end is None else float(where.end),
                    ),
                )
            )
        if where.account_ids:
            must.append(
                edge.FieldCondition(key=ACCOUNTS, match=edge.MatchAny(sorted(where.account_ids)))
            )
        if where.category_ids:
            must.append(
                edge.FieldCondition(key=CATEGORIES, match=edge.MatchAny(sorted(where.category_ids)))
            )
    return edge.Filter(must=must)


class EdgeVectorIndex:
    """A Qdrant Edge shard in a directory, with `collection.json` naming its model."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._shard: edge.EdgeShard | None = None
        self._lock = threading.Lock()

    @property
    def _meta_file(self) -> Path:
        return self.path / "collection.json"

    def _ensure(self, model_id: str, dimension: int) -> None:
        with self._lock:
            if self._meta_file.exists():
                _check(json.loads(self._meta_file.read_text()), model_id, dimension)
                if self._shard is None:
                    self._shard = self._load()
                return
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            # A shard without its record (a crash between the two) is rebuilt, not trusted.
            shutil.rmtree(self.path / "shard", ignore_errors=True)
            config = edge.EdgeConfig(
                vectors=edge.EdgeVectorParams(size=dimension, distance=edge.Distance.Cosine)
            )
            shard = edge.EdgeShard.create(str(self.path / "shard"), config)
            indexes: list[tuple[str, Any]] = [
                (WORKSPACE, edge.KeywordIndexParams(is_tenant=True)),
                (DATE, edge.IntegerIndexParams(lookup=False, range=True)),
                (ACCOUNTS, edge.PayloadSchemaType.Keyword),
                (CATEGORIES, edge.PayloadSchemaType.Keyword),
            ]
            for name, schema in indexes:
                shard.update(edge.UpdateOperation.create_field_index(name, schema))
            self._meta_file.write_text(json.dumps({"model_id": model_id, "dimension": dimension}))
            self._shard = shard

    def _load(self) -> edge.EdgeShard:
        try:
            return edge.EdgeShard.load(str(self.path / "shard"))
        except Exception as exc:  # qdrant-edge raises a bare Exception
            raise IndexUnavailable(
                f"Qdrant Edge could not open {self.path} ({exc}); only one process may hold "
                "it: stop the API, or reindex through its task"
            ) from exc

    @property
    def shard(self) -> edge.EdgeShard:
        if self._shard is None:
            raise RuntimeError("ensure() the vector index before using it")
        return self._shard

    async def ensure(self, model_id: str, dimension: int) -> None:
        await asyncio.to_thread(self._ensure, model_id, dimension)

    async def upsert(self, points: Sequence[Point]) -> None:
        if not points:
            return
        batch = [edge.Point(str(pid), vector, payload) for pid, vector, payload in points]
        await asyncio.to_thread(self.shard.update, edge.UpdateOperation.upsert_points(batch))

    async def delete(self, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> None:
        if not ids:
            return
        scoped = _edge_filter(workspace_id)
        scoped = edge.Filter(
            must=[*(scoped.must or []), edge.HasIdCondition({str(i) for i in ids})]
        )
        await asyncio.to_thread(
            self.shard.update, edge.UpdateOperation.delete_points_by_filter(scoped)
        )

    async def delete_workspace(self, workspace_id: uuid.UUID) -> None:
        operation = edge.UpdateOperation.delete_points_by_filter(_edge_filter(workspace_id))
        await asyncio.to_thread(self.shard.update, operation)

    async def ids(self, workspace_id: uuid.UUID) -> set[uuid.UUID]:
        found: set[uuid.UUID] = set()
        offset: Any = None
        while True:
            request = edge.ScrollRequest(
                offset=offset, limit=5_000, filter=_edge_filter(workspace_id), with_payload=False
            )
            records, offset = await asyncio.to_thread(self.shard.scroll, request)
            found.update(uuid.UUID(str(record.id)) for record in records)
            if offset is None:
                return found

    async def count(self, workspace_id: uuid.UUID) -> int:
        request = edge.CountRequest(exact=True, filter=_edge_filter(workspace_id))
        return await asyncio.to_thread(self.shard.count, request)

    def search_sync(
        self, workspace_id: uuid.UUID, vector: Vector, limit: int, where: SearchFilter
    ) -> list[tuple[uuid.UUID, float]]:
        request = edge.QueryRequest(
            limit=limit,
            query=edge.Query.Nearest(vector),
            filter=_edge_filter(workspace_id, where),
            with_payload=False,
            with_vector=False,
        )
        return [(uuid.UUID(str(p.id)), float(p.score)) for p in self.shard.query(request)]

    async def search(
        self, workspace_id: uuid.UUID, vector: Vector, limit: int, where: SearchFilter
    ) -> list[tuple[uuid.UUID, float]]:
        return await asyncio.to_thread(self.search_sync, workspace_id, vector, limit, where)

    async def payloads(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        offset: Any = None
        while True:
            request = edge.ScrollRequest(offset=offset, limit=1_000, with_payload=True)
            records, offset = await asyncio.to_thread(self.shard.scroll, request)
            found.extend(dict(record.payload or {}) for record in records)
            if offset is None:
                return found

    async def optimize(self) -> None:
        await asyncio.to_thread(self.shard.optimize)

    async def drop(self) -> None:
        await self.close()
        await asyncio.to_thread(shutil.rmtree, self.path, ignore_errors=True)

    async def close(self) -> None:
        with self._lock:
            if self._shard is not None:
                self._shard.flush()
                self._shard.close()
                self._shard = None


# --- Qdrant server (qdrant-client) -----------------------------------------------------------


def _server_filter(workspace_id: uuid.UUID, where: SearchFilter | None = None) -> qm.Filter:
    must: list[qm.Condition] = [
        qm.FieldCondition(key=WORKSPACE, match=qm.MatchValue(value=str(workspace_id)))
    ]
    if where is not None:
        if where.start is not None or where.end is not None:
            must.append(qm.FieldCondition(key=DATE, range=qm.Range(gte=where.start, lte=where.end)))
        if where.account_ids:
            must.append(
                qm.FieldCondition(key=ACCOUNTS, match=qm.MatchAny(any=sorted(where.account_ids)))
            )
        if where.category_ids:
            must.append(
                qm.FieldCondition(key=CATEGORIES, match=qm.MatchAny(any=sorted(where.category_ids)))
            )
    return qm.Filter(must=must)


class ServerVectorIndex:
    """A collection on a Qdrant server; its metadata names the model that built it."""

    def __init__(self, client: AsyncQdrantClient, collection: str) -> None:
        self.client = client
        self.collection = collection

    async def ensure(self, model_id: str, dimension: int) -> None:
        if await self.client.collection_exists(self.collection):
            info = await self.client.get_collection(self.collection)
            _check(dict(info.config.metadata or {}), model_id, dimension)
            return
        await self.client.create_collection(
            self.collection,
            vectors_config=qm.VectorParams(size=dimension, distance=qm.Distance.COSINE),
            metadata={"model_id": model_id, "dimension": dimension},
        )
        indexes: list[tuple[str, Any]] = [
            (WORKSPACE, qm.KeywordIndexParams(type=qm.KeywordIndexType.KEYWORD, is_tenant=True)),
            (DATE, qm.PayloadSchemaType.INTEGER),
            (ACCOUNTS, qm.PayloadSchemaType.KEYWORD),
            (CATEGORIES, qm.PayloadSchemaType.KEYWORD),
        ]
        for name, schema in indexes:
            await self.client.create_payload_index(self.collection, name, schema)

    async def upsert(self, points: Sequence[Point]) -> None:
        if not points:
            return
        await self.client.upsert(
            self.collection,
            points=[
                qm.PointStruct(id=str(pid), vector=vector, payload=payload)
                for pid, vector, payload in points
            ],
        )

    async def delete(self, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> None:
        if not ids:
            return
        scoped = _server_filter(workspace_id)
        assert isinstance(scoped.must, list)
        scoped.must.append(qm.HasIdCondition(has_id=[str(i) for i in ids]))
        await self.client.delete(self.collection, points_selector=qm.FilterSelector(filter=scoped))

    async def delete_workspace(self, workspace_id: uuid.UUID) -> None:
        await self.client.delete(
            self.collection,
            points_selector=qm.FilterSelector(filter=_server_filter(workspace_id)),
        )

    async def ids(self, workspace_id: uuid.UUID) -> set[uuid.UUID]:
        found: set[uuid.UUID] = set()
        offset: Any = None
        while True:
            records, offset = await self.client.scroll(
                self.collection,
                scroll_filter=_server_filter(workspace_id),
                limit=5_000,
                offset=offset,
                with_payload=False,
            )
            found.update(uuid.UUID(str(record.id)) for record in records)
            if offset is None:
                return found

    async def count(self, workspace_id: uuid.UUID) -> int:
        result = await self.client.count(
            self.collection, count_filter=_server_filter(workspace_id), exact=True
        )
        return result.count

    async def search(
        self, workspace_id: uuid.UUID, vector: Vector, limit: int, where: SearchFilter
    ) -> list[tuple[uuid.UUID, float]]:
        response = await self.client.query_points(
            self.collection,
            query=vector,
            query_filter=_server_filter(workspace_id, where),
            limit=limit,
            with_payload=False,
        )
        return [(uuid.UUID(str(p.id)), float(p.score)) for p in response.points]

    async def payloads(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        offset: Any = None
        while True:
            records, offset = await self.client.scroll(
                self.collection, limit=1_000, offset=offset, with_payload=True
            )
            found.extend(dict(record.payload or {}) for record in records)
            if offset is None:
                return found

    async def optimize(self) -> None:
        return None  # a server runs its optimizers itself

    async def drop(self) -> None:
        await self.client.delete_collection(self.collection)

    async def close(self) -> None:
        await self.client.close()
