"""probe(): header facts, exact counts on request."""

from __future__ import annotations

import pytest

from videoespresso.schema import VideoInfo
from videoespresso.video import VideoReader, probe
from videoespresso.video.synth import make_test_video, make_video, make_vfr_video, MovingShapes


def test_probe_cfr_with_audio(tmp_path):
    clip = make_test_video(tmp_path / "a.mp4", "cut", fps=20, audio=True)
    info = probe(clip.path)
    assert isinstance(info, VideoInfo)
    assert info.num_frames == clip.num_frames == 80
    assert info.num_frames_exact
    assert info.avg_fps == pytest.approx(20.0)
    assert info.duration_s == pytest.approx(4.0, abs=0.01)
    assert (info.width, info.height) == (160, 120)
    assert info.codec == "h264"
    assert info.has_audio
    assert not info.is_vfr
    assert info.rotation == 0
    assert info.path == str(clip.path)


def test_probe_vfr_and_counted(tmp_path):
    clip = make_vfr_video(tmp_path / "v.mp4", seconds=3.0)
    info = probe(clip.path)
    assert info.is_vfr
    assert not info.has_audio
    counted = probe(clip.path, count_frames=True)
    assert counted.num_frames == clip.num_frames
    assert counted.num_frames_exact and counted.is_vfr
    assert counted.avg_fps == pytest.approx(clip.num_frames / counted.duration_s)


def test_mkv_without_frame_count_is_estimated_then_counted(tmp_path):
    # Matroska stores no frame count: the header gives an estimate, counting gives the truth.
    clip = make_video(tmp_path / "c.mkv", [MovingShapes(2.0)], fps=15)
    info = probe(clip.path)
    assert not info.num_frames_exact
    assert abs(info.num_frames - clip.num_frames) <= 2
    counted = probe(clip.path, count_frames=True)
    assert counted.num_frames_exact and counted.num_frames == clip.num_frames == 30


def test_reader_info_matches_generator(tmp_path):
    clip = make_test_video(tmp_path / "m.mp4", "mixed", fps=25)
    with VideoReader(clip.path) as r:
        assert r.info.num_frames == clip.num_frames
        assert list(r.frame_times) == pytest.approx(clip.frame_times)
        assert r.duration_s == pytest.approx(clip.duration_s)


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotation_is_reported_and_frames_come_upright(tmp_path, degrees):
    import av

    from videoespresso.video.synth import read_frame_number

    clip = make_test_video(tmp_path / "r.mp4", "static", seconds=0.4)
    rotated = tmp_path / f"rot{degrees}.mp4"
    with av.open(str(clip.path)) as src, av.open(str(rotated), "w") as dst:
        s_in = src.streams.video[0]
        s_out = dst.add_stream_from_template(s_in)
        # FFmpeg's display matrix angle is counter-clockwise; "rotate 90" (clockwise) is -90.
        s_out.set_display_rotation(-degrees)
        for packet in src.demux(s_in):
            if packet.dts is None:
                continue
            packet.stream = s_out
            dst.mux(packet)
    info = probe(rotated)
    assert info.rotation == degrees
    with VideoReader(rotated) as r:
        frame = r.get_frames_at([3], output="numpy")[0].image
    expected_shape = (160, 120, 3) if degrees in (90, 270) else (120, 160, 3)
    assert frame.shape == expected_shape
    import numpy as np

    upright = np.rot90(frame, k=degrees // 90)
    assert read_frame_number(upright) == 3
