"""BM25 over decrypted transaction text, in memory, one index per workspace.

The text never leaves the process. Documents are added, replaced and removed one by one
(fed by the outbox events); the scorer is rebuilt after a change, at once for a household
(milliseconds) and in the background for very large workspaces (see `WorkspaceBM25`).
Two scorers are wired: `rank-bm25` (named by the design) and `bm25s`;
bench/advisor_retrieval.py measures both and BM25_ENGINE picks the faster (bm25s:
~100x at 100k transactions).
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Protocol

import bm25s  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt
from nltk.stem import PorterStemmer  # type: ignore[import-untyped]
from rank_bm25 import BM25Okapi  # type: ignore[import-untyped]
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from domain.advisor.retrieval.documents import TransactionDocument
from domain.advisor.retrieval.port import SearchFilter

Engine = Literal["rank_bm25", "bm25s"]
BM25_ENGINE: Engine = "bm25s"
Scores = npt.NDArray[np.float64]

_WORD = re.compile(r"\w+")
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "in",
        "is",
        "it",
        "of",
        "on",
        "or",
        "our",
        "the",
        "to",
        "was",
        "we",
        "were",
        "with",
    ]
)
_STEMMER = PorterStemmer()


@lru_cache(maxsize=100_000)
def _stem(word: str) -> str:
    return str(_STEMMER.stem(word))


def words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.casefold()) if w not in _STOPWORDS]


def tokenize(text: str) -> list[str]:
    """Lower-cased words without stopwords, Porter-stemmed ("rides" finds "Ride")."""
    return [_stem(w) for w in words(text)]


def _max_edits(term: str) -> int:
    # Elasticsearch's "AUTO" fuzziness: exact up to 2 letters, 1 edit up to 5, else 2.
    return 0 if len(term) <= 2 else 1 if len(term) <= 5 else 2


def repair_query(query: str, vocabulary: frozenset[str], spellings: list[str]) -> list[str]:
    """The query's terms, with each term the index does not know repaired against the
    index's own vocabulary: joined with a neighbour when that makes a known word ("big
    basket" -> "bigbasket"), else the closest known spelling(s) within `_max_edits`
    ("swigy" -> "swiggy"). Hand-written: rank-bm25 and bm25s match terms exactly."""
    raw = words(query)
    terms: list[str] = []
    index = 0
    while index < len(raw):
        term = _stem(raw[index])
        if term in vocabulary:
            terms.append(term)
            index += 1
            continue
        joined = _stem(raw[index] + raw[index + 1]) if index + 1 < len(raw) else None
        if joined in vocabulary:
            terms.append(joined)
            index += 2
            continue
        if terms and _stem(raw[index - 1] + raw[index]) in vocabulary:
            terms[-1] = _stem(raw[index - 1] + raw[index])
            index += 1
            continue
        terms.extend(_closest(term, spellings))
        index += 1
    return terms


def _closest(term: str, spellings: list[str]) -> list[str]:
    edits = _max_edits(term)
    if not edits or not spellings:
        return []
    found = process.extract(
        term, spellings, scorer=Levenshtein.distance, score_cutoff=edits, limit=5
    )
    if not found:
        return []
    best = min(distance for _, distance, _ in found)
    return [spelling for spelling, distance, _ in found if distance == best]


class Scorer(Protocol):
    def scores(self, query: list[str]) -> Scores: ...


class RankBM25Scorer:
    def __init__(self, corpus: list[list[str]]) -> None:
        self._bm25 = BM25Okapi(corpus)

    def scores(self, query: list[str]) -> Scores:
        return np.asarray(self._bm25.get_scores(query), dtype=np.float64)


class Bm25sScorer:
    def __init__(self, corpus: list[list[str]]) -> None:
        self._count = len(corpus)
        self._bm25 = bm25s.BM25()
        self._bm25.index(corpus, show_progress=False)
        self._vocab: dict[str, int] = self._bm25.vocab_dict

    def scores(self, query: list[str]) -> Scores:
        ids = [self._vocab[token] for token in query if token in self._vocab]
        if not ids:
            return np.zeros(self._count)
        return np.asarray(self._bm25.get_scores_from_ids(ids), dtype=np.float64)


def build_scorer(corpus: list[list[str]], engine: Engine = BM25_ENGINE) -> Scorer:
    return RankBM25Scorer(corpus) if engine == "rank_bm25" else Bm25sScorer(corpus)


@dataclass(frozen=True)
class _Entry:
    tokens: list[str]
    date: int
    account_ids: tuple[str, ...]
    category_ids: tuple[str, ...]


class _Snapshot:
    """The scorer plus the arrays that filter its documents, for one version of the index."""

    def __init__(self, entries: dict[uuid.UUID, _Entry], engine: Engine) -> None:
        self.ids = list(entries)
        self.positions = {transaction_id: i for i, transaction_id in enumerate(self.ids)}
        values = list(entries.values())
        self.dates = np.array([e.date for e in values], dtype=np.int64)
        self.by_account = _positions(e.account_ids for e in values)
        self.by_category = _positions(e.category_ids for e in values)
        self.scorer = build_scorer([e.tokens for e in values], engine) if values else None
        self.vocabulary = frozenset(token for e in values for token in e.tokens)
        # Fuzzy repair looks among words only (not references, amounts or dates).
        self.spellings = sorted(t for t in self.vocabulary if t.isalpha())

    def mask(self, where: SearchFilter) -> npt.NDArray[np.bool_]:
        keep = np.ones(len(self.ids), dtype=bool)
        if where.start is not None:
            keep &= self.dates >= where.start
        if where.end is not None:
            keep &= self.dates <= where.end
        for wanted, positions in (
            (where.account_ids, self.by_account),
            (where.category_ids, self.by_category),
        ):
            if wanted:
                any_of = np.zeros(len(self.ids), dtype=bool)
                for key in wanted:
                    any_of[positions.get(key, [])] = True
                keep &= any_of
        return keep


def _positions(keys_per_doc: Iterable[tuple[str, ...]]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for position, keys in enumerate(keys_per_doc):
        for key in keys:
            found.setdefault(key, []).append(position)
    return found


class WorkspaceBM25:
    """One workspace's documents; thread-safe (searches may run in worker threads).

    After a change the scorer is rebuilt on the next search: at once for up to
    `sync_rebuild` documents (milliseconds), else in a background thread (a second or more
    at 100k) while searches keep using the previous scorer with removed documents hidden:
    a deleted transaction is never returned; an edited or new one is found once the
    rebuild lands.
    """

    def __init__(self, engine: Engine = BM25_ENGINE, *, sync_rebuild: int = 20_000) -> None:
        self.engine = engine
        self.sync_rebuild = sync_rebuild
        self._entries: dict[uuid.UUID, _Entry] = {}
        self._version = 0  # moves with every change
        self._snapshot: _Snapshot | None = None
        self._snapshot_version = -1
        self._removed_at: dict[uuid.UUID, int] = {}  # removed ids -> the version that did it
        self._building: threading.Thread | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def upsert(self, documents: Iterable[TransactionDocument]) -> None:
        with self._lock:
            self._version += 1
            for doc in documents:
                self._entries[doc.transaction_id] = _Entry(
                    tokenize(doc.text), doc.date, doc.account_ids, doc.category_ids
                )
                self._removed_at.pop(doc.transaction_id, None)

    def remove(self, ids: Iterable[uuid.UUID]) -> None:
        with self._lock:
            self._version += 1
            for transaction_id in ids:
                if self._entries.pop(transaction_id, None) is not None:
                    self._removed_at[transaction_id] = self._version

    def snapshot(self) -> tuple[_Snapshot, frozenset[uuid.UUID]]:
        """The scorer to search with, and the ids it still holds that must be hidden."""
        with self._lock:
            if self._snapshot_version == self._version and self._snapshot is not None:
                return self._snapshot, frozenset()
            if self._snapshot is None or len(self._entries) <= self.sync_rebuild:
                self._install(_Snapshot(dict(self._entries), self.engine), self._version)
                assert self._snapshot is not None
                return self._snapshot, frozenset()
            if self._building is None:
                self._building = threading.Thread(target=self._rebuild, daemon=True)
                self._building.start()
            hidden = frozenset(
                i for i, version in self._removed_at.items() if version > self._snapshot_version
            )
            return self._snapshot, hidden

    def wait_for_rebuild(self, timeout: float | None = None) -> None:
        building = self._building
        if building is not None:
            building.join(timeout)

    def _rebuild(self) -> None:
        with self._lock:
            entries, version = dict(self._entries), self._version
        snapshot = _Snapshot(entries, self.engine)
        with self._lock:
            self._install(snapshot, version)
            self._building = None

    def _install(self, snapshot: _Snapshot, version: int) -> None:
        self._snapshot, self._snapshot_version = snapshot, version
        self._removed_at = {i: v for i, v in self._removed_at.items() if v > version}

    def search(
        self, query: str, limit: int, where: SearchFilter | None = None
    ) -> list[tuple[uuid.UUID, float]]:
        """Best first; documents with no query word in common are not returned."""
        where = where or SearchFilter()
        snapshot, hidden = self.snapshot()
        tokens = repair_query(query, snapshot.vocabulary, snapshot.spellings)
        if snapshot.scorer is None or not tokens:
            return []
        scores = snapshot.scorer.scores(tokens)
        scores = np.where(snapshot.mask(where), scores, 0.0)
        for transaction_id in hidden:
            position = snapshot.positions.get(transaction_id)
            if position is not None:
                scores[position] = 0.0
        count = min(limit, int(np.count_nonzero(scores > 0)))
        if count == 0:
            return []
        top = np.argpartition(-scores, count - 1)[:count]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(snapshot.ids[i], float(scores[i])) for i in top]
