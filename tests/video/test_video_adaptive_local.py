"""Adaptive sampling sees local motion: a small object moving on a still background is dynamic,
while sensor grain and a slow fade (nothing moves) are not."""

from __future__ import annotations

import numpy as np
import pytest

from videoespresso.video import AdaptiveSampler
from videoespresso.video.motion import DEFAULT_THRESHOLD, block_means, changed_blocks, signature_change
from videoespresso.video.synth import Fade, MovingBlock, Pan, StaticShot, make_video


def _per_second(record, n_seconds):
    counts = np.zeros(n_seconds, dtype=int)
    for f in record.frames:
        counts[min(n_seconds - 1, int(f.seconds + 1e-6))] += 1
    return counts


def test_small_block_moving_gets_more_frames_than_the_still_half(tmp_path):
    # The reported case: 10 s of 320x240, the second half a 60x80 red block sweeping a still
    # background at 50 px/s (about 1-2 % of the picture's pixels change per probe pair).
    clip = make_video(tmp_path / "block.mp4", [StaticShot(5.0), MovingBlock(5.0, block=(60, 80), speed=50.0)],
                      size=(320, 240))
    record = AdaptiveSampler(1, 3).sample(clip.path)
    counts = _per_second(record, 10)
    assert list(counts) == [1] * 5 + [3] * 5
    assert record.params["dynamic_seconds"] == [5, 6, 7, 8, 9]
    scores = record.params["motion_scores"]
    assert max(scores[:5]) < DEFAULT_THRESHOLD < min(scores[5:])


@pytest.mark.parametrize("grain", [0, 20])
def test_grain_and_a_slow_fade_are_not_motion_but_a_pan_is(tmp_path, grain):
    clip = make_video(tmp_path / f"g{grain}.mp4", [StaticShot(2.0), Fade(2.0, delta=-60), Pan(2.0, speed=60)],
                      size=(320, 240), grain=grain)
    record = AdaptiveSampler(1, 3).sample(clip.path)
    assert record.params["dynamic_seconds"] == [4, 5]
    assert list(_per_second(record, 6)) == [1, 1, 1, 1, 3, 3]


def test_a_uniform_brightness_change_is_not_counted():
    rng = np.random.default_rng(0)
    yuv = rng.uniform(40, 200, size=(3, 72, 96)).astype(np.float32)
    a = block_means(yuv)
    assert a.shape == (3, 12, 16)
    brighter = block_means(yuv + np.array([30.0, 0.0, 0.0], dtype=np.float32)[:, None, None])
    assert changed_blocks(a, brighter) == 0.0
    moved = yuv.copy()
    moved[1:3, 30:50, 40:60] += 60.0  # a colour object appears in a few cells
    assert 0.0 < changed_blocks(a, block_means(moved)) < 0.1
    # a change of picture size is a change of everything
    assert signature_change((96, 72, a), (96, 60, block_means(yuv[:, :60]))) == 1.0
