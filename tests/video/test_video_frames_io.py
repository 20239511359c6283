"""Frames on disk: JPEG names that carry index and time, an atomic JSON sidecar."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from videoespresso.errors import FormatError
from videoespresso.schema import FrameRef
from videoespresso.video import SIDECAR, frame_filename, load_frames_json, parse_frame_filename, sample_frames
from videoespresso.video.synth import make_test_video, read_frame_number


def test_file_names_round_trip():
    ref = FrameRef(index=48, seconds=1.6)
    assert frame_filename(ref) == "f000048_t000001.600.jpg"
    assert parse_frame_filename("some/dir/f000048_t000001.600.jpg") == ref
    big = FrameRef(index=1234567, seconds=12345.678)
    assert parse_frame_filename(frame_filename(big)) == big
    with pytest.raises(FormatError, match="480.jpg"):
        parse_frame_filename("480.jpg")


def test_sample_frames_writes_jpegs_and_sidecar(tmp_path):
    clip = make_test_video(tmp_path / "c.mp4", "mixed", fps=25)
    out = tmp_path / "frames"
    record, images = sample_frames(clip.path, "fps:1", out_dir=out)
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted([frame_filename(f) for f in record.frames] + [SIDECAR])
    for ref, image in zip(record.frames, images):
        assert ref.path == str(out / frame_filename(ref))
        on_disk = Image.open(ref.path)
        assert on_disk.format == "JPEG" and on_disk.size == (160, 120)
        assert read_frame_number(on_disk) == ref.index
        back = parse_frame_filename(ref.path)
        assert (back.index, back.seconds) == (ref.index, pytest.approx(ref.seconds, abs=5e-4))
    side = json.loads((out / SIDECAR).read_text())
    assert side["sampler"] == "fps" and side["params"] == {"fps": 1.0}
    assert side["frames"][1] == {"index": 25, "seconds": 1.0, "path": "f000025_t000001.000.jpg"}
    loaded = load_frames_json(out)
    assert loaded == record


def test_repeated_indices_write_one_file_and_size_is_recorded(tmp_path):
    clip = make_test_video(tmp_path / "s.mp4", "static", fps=5, seconds=0.6)
    record, images = sample_frames(clip.path, "uniform:6", out_dir=tmp_path / "o", size=(80, 40))
    assert [f.index for f in record.frames] == [0, 0, 0, 1, 1, 2]
    assert len(list((tmp_path / "o").glob("*.jpg"))) == 3
    assert record.params["size"] == [80, 40]
    assert all(im.size == (80, 40) for im in images)
    assert not list((tmp_path / "o").glob(".*tmp"))


def test_without_out_dir_nothing_is_written(tmp_path):
    clip = make_test_video(tmp_path / "s.mp4", "static", seconds=1.0)
    record, images = sample_frames(clip.path, "uniform:3")
    assert len(images) == 3 and all(f.path is None for f in record.frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.mp4"]


def test_load_frames_json_errors(tmp_path):
    with pytest.raises(FormatError, match="no frames sidecar"):
        load_frames_json(tmp_path)
    (tmp_path / SIDECAR).write_text("{not json")
    with pytest.raises(FormatError, match="not a valid frames sidecar"):
        load_frames_json(tmp_path)
