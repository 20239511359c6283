"""The text embedders: the packaged MiniLM (real weights) and the st: wrapper."""

from __future__ import annotations

import numpy as np
import pytest

from videoespresso.errors import CheckpointNotFoundError
from videoespresso.models import TextEmbedder
from videoespresso.models.embedders import SentenceTransformerEmbedder, minilm_path

# (caption, paraphrase) pairs about unrelated scenes.
PAIRS = [
    ("A man opens the front door of a house.", "A person is opening the door of a home."),
    ("A chef chops onions on a wooden board.", "Someone is cutting onions in a kitchen."),
    ("Two dogs run across a grassy park.", "A pair of dogs are running on the grass in a park."),
    ("A red car stops at a traffic light.", "A red automobile waits at a red light."),
    ("A woman plays the violin on a stage.", "A female musician performs violin in a concert."),
]


def test_minilm_shape_dtype_and_unit_rows(minilm):
    texts = [t for pair in PAIRS for t in pair]
    vectors = minilm.embed(texts)
    assert isinstance(minilm, TextEmbedder)
    assert minilm.spec == "minilm"
    assert minilm.dim == 384
    assert vectors.shape == (len(texts), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_minilm_paraphrases_score_higher_than_unrelated_captions(minilm):
    first = minilm.embed([a for a, _ in PAIRS])
    second = minilm.embed([b for _, b in PAIRS])
    similarity = first @ second.T
    for i in range(len(PAIRS)):
        unrelated = np.delete(similarity[i], i)
        assert similarity[i, i] > unrelated.max() + 0.2, (PAIRS[i], similarity[i])


def test_minilm_empty_input_and_single_string(minilm):
    empty = minilm.embed([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    with pytest.raises(TypeError, match="list of texts"):
        minilm.embed("a single string")


def test_st_wrapper_over_a_local_folder_matches_minilm(minilm):
    embedder = SentenceTransformerEmbedder(
        str(minilm_path()), spec="st:local-minilm", batch_size=2, local_files_only=True
    )
    texts = [a for a, _ in PAIRS]
    assert embedder.spec == "st:local-minilm"
    np.testing.assert_allclose(embedder.embed(texts), minilm.embed(texts), atol=1e-5)


def test_st_missing_model_is_a_checkpoint_error(tmp_path):
    from videoespresso import load_model

    with pytest.raises(CheckpointNotFoundError, match=r"st:BAAI/bge-m3"):
        load_model("st:BAAI/bge-m3")
    missing = tmp_path / "no-such-model"
    with pytest.raises(CheckpointNotFoundError, match="no-such-model"):
        SentenceTransformerEmbedder(str(missing), spec=f"st:{missing}")
