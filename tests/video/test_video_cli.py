"""``videoespresso frames`` and ``videoespresso probe`` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from videoespresso.video import SIDECAR, load_frames_json
from videoespresso.video.synth import make_bad_video, make_test_video

SRC = str(Path(__file__).resolve().parents[2] / "src")


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "videoespresso", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_test_video(tmp_path_factory.mktemp("cli") / "clip.mp4", "static_moving", fps=25)


def test_frames_fps_writes_folder(clip, tmp_path):
    out = tmp_path / "frames"
    res = run("frames", str(clip.path), "--sampler", "fps:1", "--out", str(out), "--size", "80")
    assert res.returncode == 0, res.stderr
    record = load_frames_json(out)
    assert [f.index for f in record.frames] == [25 * s for s in range(9)]
    assert record.params == {"fps": 1.0, "size": 80}
    assert len(list(out.glob("f*_t*.jpg"))) == 9
    assert "9 frames" in res.stdout


@pytest.mark.parametrize("spec, count", [("uniform:16", 16), ("uniform:5:vlmevalkit", 5), ("adaptive:1:3", 15)])
def test_frames_other_samplers(clip, tmp_path, spec, count):
    res = run("frames", str(clip.path), "-s", spec, "-o", str(tmp_path / "o"))
    assert res.returncode == 0, res.stderr
    side = json.loads((tmp_path / "o" / SIDECAR).read_text())
    assert len(side["frames"]) == count
    assert side["sampler"] == spec.split(":")[0]


def test_frames_batch_records_failures_and_goes_on(clip, tmp_path):
    bad = make_bad_video(tmp_path / "bad.mp4", "text")
    res = run("frames", str(clip.path), str(bad), "-s", "uniform:2", "-o", str(tmp_path / "o"))
    assert res.returncode == 1
    assert "bad.mp4: not a readable video" in res.stderr
    assert "1 of 2 videos done, 1 failed" in res.stderr
    assert (tmp_path / "o" / "clip" / SIDECAR).is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["-s", "bogus:1"], "unknown sampler 'bogus:1'"),
        (["--size", "12y"], "--size '12y'"),
        (["--quality", "500"], "Invalid value for '--quality': Input should be less than or equal to 100"),
    ],
)
def test_frames_bad_options_exit_2(clip, tmp_path, args, message):
    res = run("frames", str(clip.path), "-o", str(tmp_path / "o"), *args)
    assert res.returncode == 2
    assert message in res.stderr
    assert "Traceback" not in res.stderr


def test_frames_single_bad_video_exits_2(tmp_path):
    res = run("frames", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o"))
    assert res.returncode == 2
    assert "missing.mp4: no such file" in res.stderr
    assert "Traceback" not in res.stderr


def test_probe_table_and_json(clip):
    res = run("probe", str(clip.path))
    assert res.returncode == 0, res.stderr
    assert "num_frames" in res.stdout and "225" in res.stdout
    res = run("probe", str(clip.path), "--json", "--count-frames")
    info = json.loads(res.stdout)
    assert info["num_frames"] == 225 and info["num_frames_exact"] is True and info["codec"] == "h264"


def test_probe_audio_only_exit_2(tmp_path):
    path = make_bad_video(tmp_path / "a.mp4", "audio_only")
    res = run("probe", str(path))
    assert res.returncode == 2
    assert "no video stream" in res.stderr


def test_frames_rerun_into_a_used_folder_leaves_no_stale_frames_and_counts_what_it_wrote(tmp_path):
    short = make_test_video(tmp_path / "short.mp4", "static", seconds=0.4, fps=10)  # 4 frames
    out = tmp_path / "o"
    assert run("frames", str(short.path), "-s", "uniform:4", "-o", str(out)).returncode == 0
    assert len(list(out.glob("f*_t*.jpg"))) == 4
    res = run("frames", str(short.path), "-s", "uniform:2", "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert len(list(out.glob("f*_t*.jpg"))) == 2 == len(load_frames_json(out).frames)
    res = run("frames", str(short.path), "-s", "uniform:10", "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert len(list(out.glob("f*_t*.jpg"))) == 4
    assert "4 frames written" in res.stdout and "asked for 10" in res.stdout
