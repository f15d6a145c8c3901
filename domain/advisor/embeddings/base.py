"""The embeddings port: what the retrieval code needs from an embedding model."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Protocol

Vector = list[float]

_SPACE = re.compile(r"\s+")
# Long digit runs (UPI references, order numbers) carry no meaning for a sentence model and
# would make every narration distinct; BM25 still sees them.
_REFERENCE = re.compile(r"\d{6,}")


class Embedder(Protocol):
    """Turns texts into unit vectors of `dimension` floats; `model_id` names the model (an
    index built by one model refuses another)."""

    @property
    def model_id(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> list[Vector]: ...


class EmbeddingError(RuntimeError):
    """The model could not embed (the API refused, timed out or answered nonsense)."""


def normalise_text(text: str) -> str:
    """The form that is embedded and cached: NFKC, references masked, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text)
    text = _REFERENCE.sub("#", text)
    return _SPACE.sub(" ", text).strip()
