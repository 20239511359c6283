"""Uniform and fixed-fps samplers: exact indices and times; spec strings."""

from __future__ import annotations

import numpy as np
import pytest

from videoespresso.errors import UserError
from videoespresso.schema import SampledFrames
from videoespresso.video import (
    AdaptiveSampler,
    FpsSampler,
    UniformSampler,
    VideoReader,
    parse_sampler,
    uniform_indices,
)
from videoespresso.video.synth import make_test_video, make_vfr_video, read_frame_number


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_test_video(tmp_path_factory.mktemp("samplers") / "clip.mp4", "mixed", fps=25)


@pytest.fixture(scope="module")
def vfr(tmp_path_factory):
    return make_vfr_video(tmp_path_factory.mktemp("samplers") / "vfr.mp4", seconds=4.0)


def _official_rule(n: int, k: int) -> list[int]:
    # The VideoEspresso evaluation script: numpy.linspace(0, n - 1, k), truncated to int.
    return [int(x) for x in np.linspace(0, n - 1, k)]


def test_uniform_official_matches_the_rule_for_many_pairs():
    for n in list(range(1, 40)) + [99, 100, 101, 1000, 4321]:
        for k in [1, 2, 3, 4, 7, 8, 16, 32, 64, 128, 200]:
            assert uniform_indices(n, k) == _official_rule(n, k), (n, k)
    # k > n repeats frames exactly as the official rule does
    assert uniform_indices(3, 8) == [0, 0, 0, 0, 1, 1, 1, 2]


def test_uniform_other_conventions():
    assert uniform_indices(100, 4, "vlmevalkit") == [20, 40, 60, 80]
    assert uniform_indices(10, 3, "vlmevalkit") == [2, 5, 7]  # int(i * 10 / 4)
    assert uniform_indices(100, 4, "transformers") == [0, 25, 50, 75]
    assert uniform_indices(3, 8, "transformers") == [0, 1, 2]  # capped at n
    assert uniform_indices(10, 4, "rounded") == [0, 3, 6, 9]
    assert uniform_indices(10, 4, "official") == [0, 3, 6, 9]
    assert uniform_indices(11, 4, "rounded") == [0, 3, 7, 10]
    assert uniform_indices(11, 4, "official") == [0, 3, 6, 10]
    with pytest.raises(ValueError, match="unknown uniform convention"):
        uniform_indices(10, 2, "nope")


@pytest.mark.parametrize("k", [1, 16, 151, 300])
def test_uniform_sampler_on_a_video(clip, k):
    record = UniformSampler(k).sample(clip.path)
    assert isinstance(record, SampledFrames)
    assert record.sampler == "uniform" and record.params == {"k": k, "convention": "official"}
    expected = _official_rule(clip.num_frames, k)
    assert [f.index for f in record.frames] == expected
    assert [f.seconds for f in record.frames] == pytest.approx([clip.frame_times[i] for i in expected])
    assert record.video == str(clip.path)


def test_uniform_sampler_decodes_the_chosen_frames(clip):
    with VideoReader(clip.path) as r:
        record, frames = UniformSampler(8, "vlmevalkit").sample_with_frames(r, output="numpy")
    assert [read_frame_number(f.image) for f in frames] == [f.index for f in record.frames]
    assert [f.index for f in record.frames] == uniform_indices(clip.num_frames, 8, "vlmevalkit")


def _nearest(times: list[float], targets) -> list[int]:
    out = []
    for t in targets:
        d = [abs(x - t) for x in times]
        out.append(d.index(min(d)))  # first minimum = earlier frame on ties
    return sorted(set(out))


@pytest.mark.parametrize("rate", [1.0, 2.0, 3.0, 7.5])
def test_fps_sampler_on_cfr(clip, rate):
    record = FpsSampler(rate).sample(clip.path)
    targets = [j / rate for j in range(int(np.ceil(clip.duration_s * rate - 1e-9)))]
    assert [f.index for f in record.frames] == _nearest(clip.frame_times, targets)
    assert record.params == {"fps": rate}
    if rate == 1.0:
        assert [f.index for f in record.frames] == [0, 25, 50, 75, 100, 125]
        assert [f.seconds for f in record.frames] == pytest.approx([0, 1, 2, 3, 4, 5])


@pytest.mark.parametrize("rate", [1.0, 4.0, 30.0])
def test_fps_sampler_on_vfr_picks_the_nearest_frames(vfr, rate):
    with VideoReader(vfr.path) as r:
        record, frames = FpsSampler(rate).sample_with_frames(r, output="numpy")
        duration = r.duration_s
    targets = [j / rate for j in range(int(np.ceil(duration * rate - 1e-9)))]
    expected = _nearest(vfr.frame_times, targets)
    assert [f.index for f in record.frames] == expected
    assert [f.seconds for f in record.frames] == pytest.approx([vfr.frame_times[i] for i in expected], abs=1e-6)
    assert [read_frame_number(f.image) for f in frames] == expected
    # On a VFR file the nearest frames are not a fixed index stride.
    if rate == 4.0:
        assert len(set(np.diff(expected))) > 1


def test_parse_sampler_forms_and_round_trip():
    cases = {
        "uniform:16": (UniformSampler, {"k": 16, "convention": "official"}),
        "uniform:16:vlmevalkit": (UniformSampler, {"k": 16, "convention": "vlmevalkit"}),
        "fps:1": (FpsSampler, {"fps": 1.0}),
        "fps:0.5": (FpsSampler, {"fps": 0.5}),
    }
    for text, (cls, params) in cases.items():
        s = parse_sampler(text)
        assert isinstance(s, cls) and s.params == params
        assert parse_sampler(s.spec).params == s.params
    a = parse_sampler("adaptive")
    assert isinstance(a, AdaptiveSampler) and (a.static_fps, a.dynamic_fps, a.threshold, a.fast) == (1.0, 3.0, None, False)
    b = parse_sampler("adaptive:1:4:0.05:fast")
    assert (b.static_fps, b.dynamic_fps, b.threshold, b.fast) == (1.0, 4.0, 0.05, True)
    assert parse_sampler(b.spec).params == b.params
    assert parse_sampler(" adaptive:2:3 ").spec == "adaptive:2:3"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "unknown sampler"),
        ("random:3", "unknown sampler"),
        ("uniform", "expected uniform:K"),
        ("uniform:abc", "K must be a number"),
        ("uniform:0", "k > 0"),
        ("uniform:4:decord", "unknown uniform convention"),
        ("fps", "expected fps:R"),
        ("fps:-1", "positive"),
        ("fps:x", "R must be a number"),
        ("adaptive:3:1", "at least static_fps"),
        ("adaptive:1:3:2", "threshold"),
        ("adaptive:1:2:0.1:9", "too many fields"),
    ],
)
def test_parse_sampler_rejects_bad_text(text, fragment):
    with pytest.raises(UserError, match=fragment) as info:
        parse_sampler(text)
    assert repr(text.strip()) in str(info.value) or "unknown sampler" in str(info.value)


def test_samplers_accept_an_open_reader_and_report_progress(clip):
    seen: list[tuple[float, float]] = []
    with VideoReader(clip.path) as r:
        record = FpsSampler(1).sample(r)  # leaves the reader open
        _, frames = UniformSampler(4).sample_with_frames(r, progress=lambda done, total: seen.append((done, total)))
        assert len(frames) == 4 and len(record.frames) == 6
        assert r.get_frames_at([1])[0].index == 1
    assert seen and all(total == pytest.approx(clip.duration_s) for _, total in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1][0] == pytest.approx(clip.frame_times[-1])
    assert repr(UniformSampler(4)) == "UniformSampler('uniform:4')"


def test_single_frame_video(tmp_path):
    from videoespresso.video.synth import StaticShot, make_video

    clip = make_video(tmp_path / "one.mp4", [StaticShot(0.04)], fps=25)
    assert clip.num_frames == 1
    for spec, expected in [("uniform:4", [0, 0, 0, 0]), ("fps:1", [0]), ("fps:30", [0]), ("adaptive", [0])]:
        record = parse_sampler(spec).sample(clip.path)
        assert [f.index for f in record.frames] == expected, spec
        assert all(f.seconds == 0.0 for f in record.frames)
