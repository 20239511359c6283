"""The test-video generator: what it writes is what it says it wrote."""

from __future__ import annotations

import av
import numpy as np
import pytest

from videoespresso.video.synth import (
    HardCut,
    MovingShapes,
    StaticShot,
    make_audio_only,
    make_bad_video,
    make_test_video,
    make_video,
    make_vfr_video,
    read_frame_number,
)


def _decoded(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        tb = float(s.time_base)
        return [(round(f.pts * tb, 6), f.to_ndarray(format="rgb24")) for f in c.decode(s)]


def test_cfr_video_has_the_frames_and_times_it_reports(tmp_path):
    clip = make_video(tmp_path / "a.mp4", [StaticShot(1.0), MovingShapes(1.0), HardCut(0.4)], fps=10, size=(160, 120))
    frames = _decoded(clip.path)
    assert clip.num_frames == 24 == len(frames)
    assert [t for t, _ in frames] == pytest.approx(clip.frame_times)
    assert [read_frame_number(img) for _, img in frames] == list(range(24))
    assert [k for k, _, _ in clip.segments] == ["static", "moving", "cut"]
    assert clip.segments[1][1:] == (1.0, 2.0)
    assert frames[0][1].shape == (120, 160, 3)


def test_segments_look_like_their_kind(tmp_path):
    clip = make_test_video(tmp_path / "m.mp4", "mixed", barcode=False)
    frames = [img.astype(int) for _, img in _decoded(clip.path)]
    fps = int(clip.fps)
    still = np.abs(frames[5] - frames[10]).mean()
    moving = np.abs(frames[2 * fps + 5] - frames[2 * fps + 10]).mean()
    cut = np.abs(frames[4 * fps - 1] - frames[4 * fps]).mean()
    assert still < 1.5
    assert moving > 3 * max(still, 0.5)
    assert cut > moving


def test_vfr_video_has_irregular_timestamps(tmp_path):
    clip = make_vfr_video(tmp_path / "v.mp4", seconds=3.0)
    frames = _decoded(clip.path)
    times = [t for t, _ in frames]
    assert times == pytest.approx(clip.frame_times, abs=1e-3)
    gaps = np.diff(times)
    assert gaps.max() > 1.5 * gaps.min()
    assert [read_frame_number(img) for _, img in frames] == list(range(clip.num_frames))


def test_audio_track_and_audio_only_file(tmp_path):
    clip = make_test_video(tmp_path / "a.mp4", "static", audio=True, seconds=1.0)
    with av.open(str(clip.path)) as c:
        assert sorted(s.type for s in c.streams) == ["audio", "video"]
    path = make_audio_only(tmp_path / "only.m4a")
    with av.open(str(path)) as c:
        assert [s.type for s in c.streams] == ["audio"]


def test_barcode_survives_proportional_resize(tmp_path):
    clip = make_test_video(tmp_path / "big.mp4", "moving", size=(320, 240), seconds=0.5)
    with av.open(str(clip.path)) as c:
        for n, f in enumerate(c.decode(video=0)):
            assert read_frame_number(f.to_image().resize((160, 120))) == n


@pytest.mark.parametrize("kind", ["empty", "text", "truncated", "lying_count", "audio_only"])
def test_bad_videos_are_written(tmp_path, kind):
    path = make_bad_video(tmp_path / f"{kind}.mp4", kind)
    assert path.exists()
    assert (path.stat().st_size == 0) == (kind == "empty")
    assert not list(tmp_path.glob("*.full.*"))


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError, match="must be even"):
        make_video(tmp_path / "x.mp4", [StaticShot(1)], size=(161, 120))
    with pytest.raises(ValueError, match="kind"):
        make_test_video(tmp_path / "x.mp4", "nope")  # type: ignore[arg-type]
