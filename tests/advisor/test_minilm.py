"""The numpy forward pass against values published for sentence-transformers' own run."""

from __future__ import annotations

import numpy as np

from domain.advisor.embeddings.minilm import DIMENSION, MiniLMEmbedder


async def test_similarities_match_the_sentence_transformers_quickstart(
    minilm: MiniLMEmbedder,
) -> None:
    # sentence-transformers' README (all-MiniLM-L6-v2): 0.6660, 0.1046, 0.1411.
    vectors = np.array(
        await minilm.embed(
            ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
        )
    )
    similarity = vectors @ vectors.T
    assert abs(similarity[0, 1] - 0.6660) < 5e-4
    assert abs(similarity[0, 2] - 0.1046) < 5e-4
    assert abs(similarity[1, 2] - 0.1411) < 5e-4


async def test_hello_world_matches_fastembeds_canonical_vector(minilm: MiniLMEmbedder) -> None:
    # fastembed's test suite pins the first dimensions of "hello world" for this model.
    vector = (await minilm.embed(["hello world", "flag embedding"]))[0]
    expected = [-0.034478, 0.03102, 0.00673, 0.02611, -0.039362]
    assert np.allclose(vector[:5], expected, atol=2e-5)


async def test_vectors_are_unit_length_and_do_not_depend_on_the_batch(
    minilm: MiniLMEmbedder,
) -> None:
    texts = ["Swiggy", "Ride to airport with a much longer narration than the others", "Uber"]
    together = np.array(await minilm.embed(texts))
    alone = np.array([(await minilm.embed([text]))[0] for text in texts])
    assert together.shape == (3, DIMENSION)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    # Padding to the batch's longest text is masked out: same vector either way.
    assert np.all(np.sum(together * alone, axis=1) > 0.99999)


async def test_nothing_to_embed_is_an_empty_answer(minilm: MiniLMEmbedder) -> None:
    assert await minilm.embed([]) == []
