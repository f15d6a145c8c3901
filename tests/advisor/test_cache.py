"""Each distinct normalised text is embedded once; the cache file holds no text."""

from __future__ import annotations

from pathlib import Path

from domain.advisor.embeddings import CachedEmbedder, VectorCacheFile, normalise_text
from domain.advisor.embeddings.minilm import MiniLMEmbedder

SECRET = b"k" * 32


def test_normalising_masks_references_and_collapses_spaces() -> None:
    assert normalise_text("UPI/DR/443461288985/Lakshmi  (house\thelp)") == (
        "UPI/DR/#/Lakshmi (house help)"
    )


async def test_each_distinct_text_is_embedded_once(minilm: MiniLMEmbedder, tmp_path: Path) -> None:
    cached = CachedEmbedder(minilm, SECRET, VectorCacheFile(tmp_path / "cache.sqlite3"))
    texts = ["UPI/DR/401030509027/Reliance Fresh", "UPI/DR/498251645208/Reliance Fresh", "Uber"]
    first = await cached.embed(texts)
    assert cached.embedded == 2  # the two UPI references normalise to one text
    assert first[0] == first[1]
    again = await cached.embed(["Uber", "UPI/DR/111111111111/Reliance Fresh"])
    assert cached.embedded == 2
    assert again == [first[2], first[0]]
    fresh = await minilm.embed(["Uber"])
    assert max(abs(a - b) for a, b in zip(again[0], fresh[0], strict=True)) < 1e-6


async def test_the_cache_file_survives_a_restart_and_holds_no_text(
    minilm: MiniLMEmbedder, tmp_path: Path
) -> None:
    path = tmp_path / "cache.sqlite3"
    secret_text = "Zanzibar Spice Emporium birthday surprise"
    first = CachedEmbedder(minilm, SECRET, VectorCacheFile(path))
    vector = (await first.embed([secret_text]))[0]
    second = CachedEmbedder(minilm, SECRET, VectorCacheFile(path))
    assert (await second.embed([secret_text]))[0] == vector
    assert second.embedded == 0
    stored = _every_byte(tmp_path)
    for word in ("Zanzibar", "zanzibar", "Spice", "birthday"):
        assert word.encode() not in stored
    # Another key (another deployment) cannot look the text up.
    other = CachedEmbedder(minilm, b"x" * 32, VectorCacheFile(path))
    await other.embed([secret_text])
    assert other.embedded == 1


def _every_byte(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in directory.iterdir())
