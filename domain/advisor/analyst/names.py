"""The workspace's own category, payee and account names, found in a question fuzzily.

Three ways a phrase of the question can name an entry of the vocabulary, best first:
1. the whole name, with misspellings and plurals ("grocries", "swigy", "Uber rides");
2. a common synonym, mapped only onto names the vocabulary has ("supermarket" ->
   "Groceries", "eating out" -> "Dining out", "cab" -> "Rides"; "food" -> every food category);
3. a distinctive part of a longer name ("instamart" -> "Swiggy Instamart").
Scores come from rapidfuzz (`fuzz.ratio`, matrix-computed with `process.cdist`); the
tokenising, plural folding and tie-breaking around it are ours.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from rapidfuzz import fuzz, process

NameKind = Literal["category", "payee", "account"]
Via = Literal["name", "synonym", "part"]
_KINDS: tuple[NameKind, ...] = ("category", "payee", "account")

# Concepts and the phrases people use for them; each also lists the usual category names,
# which is how a concept finds its entries in a vocabulary.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "groceries": (
        "groceries",
        "grocery shopping",
        "supermarket",
        "supermarkets",
        "grocery store",
        "kirana",
        "provisions",
        "vegetables",
    ),
    "dining": (
        "dining out",
        "dining",
        "restaurants",
        "restaurant",
        "eating out",
        "eat out",
        "ate out",
        "meals out",
        "dine out",
    ),
    "food delivery": ("food delivery", "food orders", "ordering in", "takeaway", "takeout"),
    "rides": ("rides", "cab", "cabs", "taxi", "taxis", "uber", "ola", "auto rickshaw", "rideshare"),
    "subscriptions": ("subscriptions", "subscription", "recurring", "memberships"),
    "fuel": ("fuel", "petrol", "diesel", "gas station", "petrol pump"),
    "utilities": ("utilities", "electricity", "water bill", "utility bills", "power bill"),
    "phone & internet": ("phone & internet", "phone", "internet", "broadband", "mobile", "wifi"),
    "streaming": ("streaming", "ott"),
    "rent": ("rent", "house rent", "rental"),
    "salary": ("salary", "salaries", "paycheck", "wages"),
    "pharmacy": ("pharmacy", "medicines", "medicine", "chemist"),
    "doctor": ("doctor", "doctors", "medical", "hospital", "clinic"),
    "fitness": ("fitness", "gym"),
    "travel": ("travel", "trips", "vacation", "vacations", "holidays", "flights", "hotels"),
    "entertainment": ("entertainment", "movies", "movie", "cinema"),
    "education": ("education", "school", "school fees", "tuition"),
    "insurance": ("insurance", "premiums"),
    "clothing": ("clothing", "clothes", "apparel", "fashion"),
    "electronics": ("electronics", "gadgets"),
    "gifts & donations": ("gifts & donations", "gifts", "donations", "charity"),
    "fees & charges": ("fees & charges", "bank charges", "bank fees"),
    "loan interest": (
        "loan interest",
        "interest on loan",
        "interest on the loan",
        "interest on home loan",
        "interest on the home loan",
        "interest on our home loan",
        "home loan interest",
        "emi interest",
    ),
    "public transport": ("public transport", "metro", "bus", "train"),
    "dividends": ("dividends",),
    "maintenance": ("maintenance", "repairs"),
}
# Broader words that cover several concepts at once.
BROADER: dict[str, tuple[str, ...]] = {
    "food": ("groceries", "dining", "food delivery"),
    "eating": ("groceries", "dining", "food delivery"),
    "transport": ("rides", "fuel", "public transport"),
    "commute": ("rides", "fuel", "public transport"),
    "health": ("pharmacy", "doctor", "fitness"),
    "healthcare": ("pharmacy", "doctor"),
    "shopping": ("clothing", "electronics", "household"),
}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that never identify a name on their own, even when only one name contains them.
_GENERIC = _words(
    """account bank ltd pvt limited india card credit debit wallet saving checking investment
    loan home out fresh food foods hospital store shop online general company service group
    technology analytic payment broking life health other new big the and expense income"""
)
# Words a name-phrase may not start or end with: the question's own grammar.
_STOPWORDS = _words(
    """a an the on in at to for of from with by and or we our us i my me you your did do does
    how much many what which who whom is are was were be been being have has had spend spent
    spending pay paid paying last this that these those month quarter year week day compare
    vs versus show list find all any total it its there than more less so far per each every
    between since during over past previous same ours about tell give get can could would
    should will money cost costs"""
)
_CUES_ACCOUNT = re.compile(r"\b(account|card|wallet|from|balance)\b", re.IGNORECASE)
_TOKEN = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)?|&")


@dataclass(frozen=True)
class Name:
    """One entry of the workspace's vocabulary (payees have no id of their own: use the name)."""

    id: str
    name: str
    kind: NameKind


@dataclass(frozen=True)
class NameMatch:
    """A vocabulary entry found in the question, and the words that named it."""

    id: str
    name: str
    kind: NameKind
    phrase: str
    score: float
    via: Via
    start: int  # where `phrase` is in the question
    end: int


def singular(token: str) -> str:
    """Fold a plural to its singular, enough for names ("groceries" ~ "grocery")."""
    if len(token) > 4 and token.endswith("ies"):
        return token[:-3] + "y"
    if len(token) > 4 and token.endswith(("sses", "ches", "shes", "xes")):
        return token[:-2]
    if len(token) > 3 and token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-1]
    return token


@dataclass(frozen=True)
class _Token:
    word: str  # lower-cased, apostrophe-free, singular
    raw: str  # lower-cased as written
    start: int
    end: int


def _tokens(text: str) -> list[_Token]:
    found = []
    for match in _TOKEN.finditer(text):
        raw = match.group(0).lower()
        if raw != "&":
            word = singular(raw.replace("'", "").replace("\u2019", ""))
            found.append(_Token(word, raw, match.start(), match.end()))
    return found


def normalise(text: str) -> str:
    return " ".join(token.word for token in _tokens(text))


def _threshold(normalised: str) -> float:
    """Short names must be spelled exactly: "ola" is not "old", "toit" is not "toil"."""
    letters = len(normalised.replace(" ", ""))
    return 100.0 if letters <= 4 else 85.0


@dataclass(frozen=True)
class _Target:
    """A phrase that stands for some entries: a name, a synonym or a distinctive part."""

    text: str
    entries: tuple[int, ...]  # indexes into Vocabulary.names
    via: Via
    words: int


class Vocabulary:
    """The names of one workspace, prepared once for many questions."""

    def __init__(self, names: Iterable[Name | tuple[str | uuid.UUID, str, str]]) -> None:
        self.names: tuple[Name, ...] = tuple(_name(entry) for entry in names)
        self._normal = [normalise(entry.name) for entry in self.names]
        targets: list[_Target] = []
        for index, text in enumerate(self._normal):
            if text:
                targets.append(_Target(text, (index,), "name", len(text.split())))
        targets.extend(self._synonym_targets())
        targets.extend(self._part_targets())
        self._targets = targets
        self._target_texts = [target.text for target in targets]
        # The first cdist imports numpy (~0.1 s): pay that here, not on the first question.
        process.cdist(["warm"], ["up"], scorer=fuzz.ratio)

    def of_kind(self, kind: NameKind) -> list[Name]:
        return [entry for entry in self.names if entry.kind == kind]

    def _concept_entries(self, concept: str) -> tuple[int, ...]:
        phrases = {normalise(phrase) for phrase in (concept, *SYNONYMS.get(concept, ()))}
        return tuple(
            index
            for index, text in enumerate(self._normal)
            if self.names[index].kind == "category" and text in phrases
        )

    def _synonym_targets(self) -> list[_Target]:
        targets = []
        for concept, phrases in SYNONYMS.items():
            entries = self._concept_entries(concept)
            if entries:
                for phrase in phrases:
                    text = normalise(phrase)
                    targets.append(_Target(text, entries, "synonym", len(text.split())))
        for word, concepts in BROADER.items():
            entries = tuple(
                index for concept in concepts for index in self._concept_entries(concept)
            )
            if entries:
                targets.append(_Target(word, entries, "synonym", 1))
        return targets

    def _part_targets(self) -> list[_Target]:
        """Runs of words found in exactly one name of a kind ("instamart", "salary account")."""
        owners: dict[tuple[NameKind, str], set[int]] = {}
        for index, text in enumerate(self._normal):
            words = text.split()
            if len(words) < 2:
                continue
            for size in range(1, len(words)):
                for begin in range(len(words) - size + 1):
                    run = words[begin : begin + size]
                    if size == 1 and (run[0] in _GENERIC or len(run[0]) < 4):
                        continue
                    if run[0] in _STOPWORDS or run[-1] in _STOPWORDS:
                        continue
                    owners.setdefault((self.names[index].kind, " ".join(run)), set()).add(index)
        whole = set(self._normal)
        return [
            _Target(text, (next(iter(indexes)),), "part", len(text.split()))
            for (_, text), indexes in owners.items()
            if len(indexes) == 1 and text not in whole
        ]

    def find(self, text: str, *, skip: Sequence[tuple[int, int]] = ()) -> list[NameMatch]:
        """The entries named in `text` (outside the `skip` spans), in reading order."""
        if not self._targets:
            return []
        tokens = [
            token
            for token in _tokens(text)
            if not any(start < token.end and token.start < end for start, end in skip)
        ]
        grams = _grams(tokens)
        if not grams:
            return []
        scores = process.cdist(
            [gram for gram, _, _, _ in grams],
            self._target_texts,
            scorer=fuzz.ratio,
            processor=None,
            score_cutoff=84,
        )
        candidates: list[tuple[float, int, int, int, int, int]] = []
        for row, column in zip(*scores.nonzero(), strict=True):
            gram_text, words, start, end = grams[row]
            target = self._targets[column]
            score = float(scores[row, column])
            if abs(words - target.words) > (1 if target.via == "name" else 0):
                continue
            if score < _threshold(target.text) or score < _threshold(gram_text):
                continue
            penalty = {"name": 0, "synonym": 5, "part": 10}[target.via]
            for entry in target.entries:
                candidates.append((score - penalty, words, start, end, entry, column))
        return self._select(text, candidates)

    def _select(
        self, text: str, candidates: list[tuple[float, int, int, int, int, int]]
    ) -> list[NameMatch]:
        prefer_account = bool(_CUES_ACCOUNT.search(text))
        order = {
            "category": 0,
            "payee": 1,
            "account": -1 if prefer_account else 2,
        }

        def rank(item: tuple[float, int, int, int, int, int]) -> tuple[int, float, int, int]:
            # the phrase covering more words first ("salary account" over "salary"), then
            # the better score, then categories before payees before accounts
            score, words, start, _, entry, _ = item
            return (-words, -score, order[self.names[entry].kind], start)

        taken: list[tuple[int, int]] = []
        chosen: dict[int, tuple[int, NameMatch]] = {}
        claimed: dict[tuple[int, int], int] = {}  # span -> the target that claimed it
        for score, _, start, end, entry, column in sorted(candidates, key=rank):
            if entry in chosen:
                continue
            span = (start, end)
            if span in claimed:
                # several entries of one synonym ("food") share a span; nothing else does
                if claimed[span] != column:
                    continue
            elif any(start < other_end and other_start < end for other_start, other_end in taken):
                continue
            taken.append(span)
            claimed[span] = column
            name = self.names[entry]
            target = self._targets[column]
            found = NameMatch(
                name.id,
                name.name,
                name.kind,
                text[start:end],
                round(score, 1),
                target.via,
                start,
                end,
            )
            chosen[entry] = (start, found)
        return [found for _, found in sorted(chosen.values(), key=lambda item: item[0])]


def _name(entry: Name | tuple[str | uuid.UUID, str, str]) -> Name:
    if isinstance(entry, Name):
        return entry
    identifier, name, kind = entry
    if kind not in _KINDS:
        raise ValueError(f"Unknown name kind {kind!r}")
    return Name(str(identifier), name, kind)


def _grams(tokens: list[_Token]) -> list[tuple[str, int, int, int]]:
    """Runs of 1-5 consecutive tokens that neither start nor end with a stopword."""
    grams = []
    for begin in range(len(tokens)):
        for size in range(1, 6):
            run = tokens[begin : begin + size]
            if len(run) < size:
                break
            if run[0].raw in _STOPWORDS or run[-1].raw in _STOPWORDS:
                continue
            if any(token.word.isdigit() for token in run):
                continue
            grams.append((" ".join(t.word for t in run), size, run[0].start, run[-1].end))
    return grams
