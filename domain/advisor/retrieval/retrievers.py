"""The two LlamaIndex retrievers and their reciprocal-rank fusion.

Nodes carry the transaction id as their only content: LlamaIndex fuses by node hash (of
text and metadata), and no transaction text has to leave the BM25 index to be fused.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from llama_index.core.llms import MockLLM
from llama_index.core.retrievers import BaseRetriever, QueryFusionRetriever
from llama_index.core.retrievers.fusion_retriever import FUSION_MODES
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

Hits = list[tuple[uuid.UUID, float]]


def _nodes(hits: Hits) -> list[NodeWithScore]:
    return [
        NodeWithScore(node=TextNode(id_=str(tid), text=str(tid)), score=score)
        for tid, score in hits
    ]


class BM25Retriever(BaseRetriever):
    """rank-bm25/bm25s over one workspace's in-memory index, already filtered."""

    def __init__(self, search: Callable[[str], Hits]) -> None:
        super().__init__()
        self._search = search

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return _nodes(self._search(query_bundle.query_str))


class DenseRetriever(BaseRetriever):
    """The query's embedding against the Qdrant collection, with the workspace filter."""

    def __init__(self, search: Callable[[str], Awaitable[Hits]]) -> None:
        super().__init__()
        self._search = search

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        raise NotImplementedError("the dense retriever is async: use aretrieve")

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return _nodes(await self._search(query_bundle.query_str))


def fusion(retrievers: list[BaseRetriever], top_k: int) -> QueryFusionRetriever:
    """Reciprocal rank fusion (k=60); one query, so the LLM (a mock that never reaches the
    network, since reading Settings.llm would reach for OpenAI) is never asked."""
    return QueryFusionRetriever(
        retrievers,
        llm=MockLLM(),
        mode=FUSION_MODES.RECIPROCAL_RANK,
        num_queries=1,
        similarity_top_k=top_k,
        use_async=True,
    )


def transaction_ids(nodes: list[NodeWithScore]) -> Hits:
    return [(uuid.UUID(n.node.node_id), float(n.score or 0.0)) for n in nodes]
