"""Hybrid retrieval over a workspace's transactions (BM25 + dense vectors, RRF-fused).

Kept light: `service` (LlamaIndex, Qdrant, the BM25 engines) is imported only by code
that searches or indexes.
"""

from domain.advisor.retrieval.port import SearchHit, TransactionSearch

__all__ = ["SearchHit", "TransactionSearch"]
