"""Redundancy removal (stage 3) with the real MiniLM embedder on captions whose answer is known."""

from __future__ import annotations

import numpy as np

from videoespresso.curate import ModelPool, RemoveRedundant, lifo_keep

RED_JACKET = "The image depicts a man in a red jacket standing next to a parked car on a city street."
CAPTIONS = [
    RED_JACKET,
    "The image depicts a man wearing a red jacket standing beside a parked car on a street in the city.",
    "The image depicts a man in a red coat standing near a parked car in a city street.",
    "The image depicts a woman slicing tomatoes on a wooden cutting board in a kitchen.",
    "The image depicts a woman cutting tomatoes on a wooden chopping board in a kitchen.",
    "The image depicts a dog running across a snowy field toward a frozen lake.",
    # back to the first scene: new relative to the top of the stack (the dog), so LIFO keeps it
    RED_JACKET,
]


def _item(captions):
    return {
        "id": "v",
        "video": "v.mp4",
        "frames": [{"index": 30 * i, "seconds": float(i), "path": f"f{i}.jpg"} for i in range(len(captions))],
        "captions": list(captions),
    }


def test_paraphrases_dropped_new_content_kept(minilm):
    stage = RemoveRedundant(ModelPool(preloaded={"minilm": minilm}), "minilm", tau=0.85)
    stage.setup()
    [out] = stage.process([_item(CAPTIONS)])
    assert out["kept"] == [0, 3, 5, 6]
    dropped = {r["position"]: r for r in out["redundant"]}
    assert set(dropped) == {1, 2, 4}
    assert dropped[1]["similar_to"] == 0 and dropped[2]["similar_to"] == 0 and dropped[4]["similar_to"] == 3
    assert dropped[4]["frame"] == 120 and dropped[4]["similar_to_frame"] == 90
    assert all(0.85 < r["similarity"] <= 1.0 + 1e-6 for r in out["redundant"])


def test_tau_controls_what_counts_as_a_repeat(minilm):
    stage = RemoveRedundant(ModelPool(preloaded={"minilm": minilm}), "minilm", tau=0.999)
    stage.setup()
    [out] = stage.process([_item(CAPTIONS)])
    assert out["kept"] == list(range(len(CAPTIONS)))  # only exact repeats would go, none adjacent
    strict = RemoveRedundant(ModelPool(preloaded={"minilm": minilm}), "minilm", tau=0.95)
    strict.setup()
    [out] = strict.process([_item(CAPTIONS)])
    assert 1 not in out["kept"] and 2 in out["kept"]  # 0.98 paraphrase dropped, 0.93 kept


def test_lifo_compares_with_the_last_kept_not_the_previous_frame():
    # a drifts to b drifts to c; each step is small, a..c is large
    a, b, c = np.array([1.0, 0.0]), np.array([0.8, 0.6]), np.array([0.28, 0.96])
    kept, redundant = lifo_keep(np.stack([a, b, c]), tau=0.7)
    assert kept == [0, 2] and redundant[0]["position"] == 1
    assert lifo_keep(np.zeros((0, 2)), 0.5) == ([], [])
