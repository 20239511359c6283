"""Adaptive sampling: the motion score separates known still and moving segments, and moving
seconds are sampled denser, in one decoding pass."""

from __future__ import annotations

import numpy as np
import pytest

from videoespresso.video import AdaptiveSampler, VideoReader, sample_frames
from videoespresso.video.motion import DEFAULT_THRESHOLD
from videoespresso.video.synth import HardCut, MovingShapes, StaticShot, make_test_video, make_video, read_frame_number


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    # still 0-3 s, moving 3-6 s, still 6-9 s
    return make_test_video(tmp_path_factory.mktemp("adaptive") / "sm.mp4", "static_moving", fps=25)


def _per_second(indices, times, n_seconds):
    # Fast mode may pick a frame up to ~0.1 s before its target (e.g. 0.96 s for 1.0 s).
    counts = np.zeros(n_seconds, dtype=int)
    for i in indices:
        counts[min(n_seconds - 1, int(times[i] + 0.1))] += 1
    return counts


@pytest.mark.parametrize("fast", [False, True])
def test_moving_segment_is_sampled_denser(clip, fast):
    record = AdaptiveSampler(1, 3, fast=fast).sample(clip.path)
    indices = [f.index for f in record.frames]
    counts = _per_second(indices, clip.frame_times, 9)
    assert list(counts) == [1, 1, 1, 3, 3, 3, 1, 1, 1]
    assert record.params["dynamic_seconds"] == [3, 4, 5]
    scores = record.params["motion_scores"]
    still = scores[:3] + scores[6:]
    moving = scores[3:6]
    # The measure separates the segments with a wide margin around the default threshold: in
    # still seconds only the frame-number barcode changes (at most 2 of the 16x12 cells).
    assert max(still) <= 2 / 192 + 1e-4 < DEFAULT_THRESHOLD * 0.6
    assert min(moving) > DEFAULT_THRESHOLD * 2
    assert record.sampler == "adaptive"
    assert record.params["static_fps"] == 1.0 and record.params["dynamic_fps"] == 3.0


def test_exact_mode_picks_the_nearest_frames(clip):
    record = AdaptiveSampler(1, 3).sample(clip.path)
    times = np.asarray(clip.frame_times)
    targets = [float(s) for s in (0, 1, 2, 6, 7, 8)] + [s + j / 3 for s in (3, 4, 5) for j in range(3)]
    expected = sorted({int(np.argmin(np.abs(times - t))) for t in targets})
    assert [f.index for f in record.frames] == expected
    assert [f.seconds for f in record.frames] == pytest.approx(times[expected].tolist())
    assert record.params["target_error_max_s"] <= 0.5 / 25 + 1e-6


def test_fast_mode_error_is_small_and_reported(clip):
    record = AdaptiveSampler(1, 3, fast=True).sample(clip.path)
    assert 0.0 <= record.params["target_error_max_s"] <= 0.1
    assert record.params["fast"] is True


def test_frames_decoded_in_the_same_pass_are_the_chosen_ones(clip):
    with VideoReader(clip.path) as r:
        record, frames = AdaptiveSampler(1, 4).sample_with_frames(r, size=96, output="numpy")
    assert [f.index for f in frames] == [f.index for f in record.frames]
    assert [read_frame_number(f.image) for f in frames] == [f.index for f in record.frames]
    assert frames[0].image.shape == (72, 96, 3)
    assert _per_second([f.index for f in frames], clip.frame_times, 9).tolist() == [1, 1, 1, 4, 4, 4, 1, 1, 1]


def test_threshold_controls_the_split(clip):
    everything = AdaptiveSampler(1, 2, threshold=0.0).sample(clip.path)
    nothing = AdaptiveSampler(1, 2, threshold=1.0).sample(clip.path)
    assert everything.params["dynamic_seconds"] == list(range(9))
    assert nothing.params["dynamic_seconds"] == []
    assert len(nothing.frames) == 9 and len(everything.frames) == 18


def test_a_hard_cut_alone_does_not_make_a_second_dynamic(tmp_path):
    clip = make_video(tmp_path / "cut.mp4", [StaticShot(2.5), HardCut(2.5)], fps=25, barcode=False)
    record = AdaptiveSampler().sample(clip.path)
    assert record.params["dynamic_seconds"] == []
    assert len(record.frames) == 5


def test_vfr_and_short_clip(tmp_path):
    from videoespresso.video.synth import make_vfr_video

    vfr = make_vfr_video(tmp_path / "vfr.mp4", seconds=3.0)
    record = AdaptiveSampler(1, 3).sample(vfr.path)
    assert record.params["dynamic_seconds"] == [0, 1, 2]
    assert [f.seconds for f in record.frames] == pytest.approx([vfr.frame_times[f.index] for f in record.frames], abs=1e-6)
    short = make_video(tmp_path / "short.mp4", [MovingShapes(0.3)], fps=10)
    rec = AdaptiveSampler().sample(short.path)
    assert 1 <= len(rec.frames) <= 3


def test_sample_frames_with_adaptive_spec(clip, tmp_path):
    record, images = sample_frames(clip.path, "adaptive:1:2", out_dir=tmp_path / "frames", size=64)
    assert len(images) == len(record.frames) == 12
    assert all(im.size == (64, 48) for im in images)


def test_from_config_uses_the_sampling_section():
    from videoespresso.config import load_config

    cfg = load_config("tiny")
    sampler = AdaptiveSampler.from_config(cfg.sampling)
    assert (sampler.static_fps, sampler.dynamic_fps) == (cfg.sampling.static_fps, cfg.sampling.dynamic_fps)
    assert sampler.effective_threshold == (cfg.sampling.motion_threshold or DEFAULT_THRESHOLD)


@pytest.mark.parametrize(
    "codec, pix_fmt, name",
    [("h264", "yuv420p10le", "ten_bit.mkv"), ("h264", "yuv444p", "full_chroma.mp4"), ("mjpeg", "yuvj420p", "intra.mkv")],
)
def test_other_pixel_formats_and_intra_only_codecs(tmp_path, codec, pix_fmt, name):
    # 10-bit frames take the scaler path for thumbnails; MJPEG has no inter frames at all.
    clip = make_video(tmp_path / name, [StaticShot(2.0), MovingShapes(2.0)], fps=25, codec=codec, pix_fmt=pix_fmt)
    with VideoReader(clip.path) as r:
        record, frames = AdaptiveSampler(1, 3).sample_with_frames(r, output="numpy")
    assert record.params["dynamic_seconds"] == [2, 3]
    assert [read_frame_number(f.image) for f in frames] == [f.index for f in record.frames]
