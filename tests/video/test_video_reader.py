"""VideoReader: the frame asked for is the frame returned, by index and by time."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from videoespresso.video import FrameOutOfRangeError, VideoReader, VideoTimeoutError
from videoespresso.video.synth import MovingShapes, make_test_video, make_video, make_vfr_video, read_frame_number


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    # Keyframes every 20 frames and B-frames: seeks and reordering are both exercised.
    return make_test_video(tmp_path_factory.mktemp("reader") / "mixed.mp4", "mixed", fps=25, gop=20)


@pytest.fixture(scope="module")
def vfr(tmp_path_factory):
    return make_vfr_video(tmp_path_factory.mktemp("reader") / "vfr.mp4", seconds=3.0, gop=15)


def _numbers(frames):
    return [read_frame_number(f.image) for f in frames]


def test_every_frame_in_one_pass(clip):
    with VideoReader(clip.path) as r:
        frames = r.get_frames_at(list(range(r.num_frames)), output="numpy")
    assert _numbers(frames) == list(range(clip.num_frames))
    assert [f.ref.seconds for f in frames] == pytest.approx(clip.frame_times)
    assert [f.ref.index for f in frames] == list(range(clip.num_frames))


@pytest.mark.parametrize("which", ["clip", "vfr"])
def test_random_requests_any_order_with_repeats(which, request):
    video = request.getfixturevalue(which)
    rng = random.Random(0)
    with VideoReader(video.path) as r:
        n = r.num_frames
        for _ in range(25):
            wanted = [rng.randrange(n) for _ in range(rng.randint(1, 10))]
            frames = r.get_frames_at(wanted, output="numpy")
            assert _numbers(frames) == wanted
            assert [f.index for f in frames] == wanted
            assert [f.seconds for f in frames] == pytest.approx([video.frame_times[i] for i in wanted], abs=1e-6)


def test_consecutive_calls_continue_without_losing_frames(clip):
    # Successive forward calls reuse the decoder position; none of the frames may be dropped.
    with VideoReader(clip.path) as r:
        got = []
        for i in range(0, 40):
            got += _numbers(r.get_frames_at([i], output="numpy"))
        assert got == list(range(40))
        assert _numbers(r.get_frames_at([5, 3], output="numpy")) == [5, 3]


def test_by_time_returns_the_frame_on_screen(vfr):
    times = vfr.frame_times
    with VideoReader(vfr.path) as r:
        queries = [0.0, times[3], (times[3] + times[4]) / 2, times[4] - 1e-4, times[-1] + 0.01]
        frames = r.get_frames_played_at(queries, output="numpy")
    assert _numbers(frames) == [0, 3, 3, 3, len(times) - 1]
    assert frames[2].seconds == pytest.approx(times[3])


def test_resize_and_output_types(clip):
    with VideoReader(clip.path) as r:
        pil = r.get_frames_at([7], size=80)[0].image
        exact = r.get_frames_at([7], size=(64, 32), output="numpy")[0].image
        native = r.get_frames_at([7], size=1000, output="numpy")[0].image
    assert isinstance(pil, Image.Image) and pil.size == (80, 60)
    assert isinstance(exact, np.ndarray) and exact.shape == (32, 64, 3) and exact.dtype == np.uint8
    assert native.shape == (120, 160, 3)  # a max side never enlarges
    assert read_frame_number(pil) == 7


def test_out_of_range_is_a_typed_error(clip):
    with VideoReader(clip.path) as r:
        with pytest.raises(FrameOutOfRangeError, match=r"frame index 150 is out of range.*150 frames"):
            r.get_frames_at([0, 150])
        with pytest.raises(FrameOutOfRangeError, match="out of range"):
            r.get_frames_at([-1])
        with pytest.raises(FrameOutOfRangeError, match="outside the video"):
            r.get_frames_played_at([clip.duration_s + 0.5])
        with pytest.raises(FrameOutOfRangeError, match=str(clip.path)):
            r.get_frames_played_at([-0.1])


def test_refs_and_nearest_without_decoding(vfr):
    with VideoReader(vfr.path) as r:
        refs = r.refs([0, 5])
        assert [x.seconds for x in refs] == pytest.approx([vfr.frame_times[0], vfr.frame_times[5]])
        t = vfr.frame_times
        assert r.index_nearest(t[5] + 0.4 * (t[6] - t[5])) == 5
        assert r.index_nearest(t[5] + 0.6 * (t[6] - t[5])) == 6
        assert r.index_nearest(-1.0) == 0 and r.index_nearest(99.0) == len(t) - 1


def test_time_budget_is_enforced_when_opening_and_decoding(tmp_path):
    clip = make_video(tmp_path / "long.mp4", [MovingShapes(3.0)], fps=25)
    with pytest.raises(VideoTimeoutError, match=r"long\.mp4: opening was interrupted"):
        VideoReader(clip.path, timeout_s=0.0)
    with VideoReader(clip.path) as r:
        r.timeout_s = 0.0  # the budget applies to each operation; this one has none left
        with pytest.raises(VideoTimeoutError, match=r"long\.mp4: .*longer than the 0 s allowed"):
            r.get_frames_at([70])


def _has_encoder(name: str) -> bool:
    import av

    try:
        av.codec.Codec(name, "w")
    except Exception:
        return False
    return True


@pytest.mark.parametrize(
    "name, codec",
    [
        ("c.mkv", "h264"),  # Matroska: seeks on presentation times, no frame count
        ("c.webm", "vp9"),
        ("c.avi", "mpeg4"),
        ("c.ts", "h264"),  # MPEG-TS: timestamps that do not start at zero
        ("c.mov", "h264"),
        ("c.h264", "h264"),  # raw elementary stream: no timestamps, cannot seek
    ],
)
def test_containers_and_codecs_give_exact_frames(tmp_path, name, codec):
    from videoespresso.video.synth import ENCODERS

    if not _has_encoder(ENCODERS.get(codec, codec)):
        pytest.skip(f"PyAV build without the {codec} encoder")
    clip = make_video(tmp_path / name, [MovingShapes(2.0)], fps=25, codec=codec, gop=15)
    rng = random.Random(3)
    with VideoReader(clip.path) as r:
        assert r.num_frames == clip.num_frames
        assert list(r.frame_times) == pytest.approx(clip.frame_times, abs=1e-3)
        for _ in range(6):
            wanted = sorted(rng.sample(range(clip.num_frames), 4))
            assert _numbers(r.get_frames_at(wanted, output="numpy")) == wanted


def test_iter_decoded_all_or_skipping_unreferenced_frames(clip):
    with VideoReader(clip.path) as r:
        every = [i for i, _ in r.iter_decoded()]
        assert every == list(range(clip.num_frames))
        needed = {3, 7, 41, 42, 149}
        got = {}
        for i, frame in r.iter_decoded(skip_nonref=True, needed=needed):
            got[i] = read_frame_number(frame.to_ndarray(format="rgb24"))
        # The wanted frames always come out, each the right one; B-frames nobody wanted do not.
        assert needed <= set(got) and all(got[i] == i for i in got)
        assert len(got) < clip.num_frames
        # The reader is usable normally afterwards.
        assert _numbers(r.get_frames_at([8, 9], output="numpy")) == [8, 9]


@pytest.mark.parametrize("ext", ["mp4", "ts"])
def test_file_cut_in_the_middle_of_a_gop(tmp_path, ext):
    # Stream copies cut without re-encoding start with frames whose keyframe was cut away; they
    # cannot be decoded, so the video starts at the first keyframe.
    import av

    clip = make_video(tmp_path / "src.mkv", [MovingShapes(3.0)], fps=25, gop=25)
    cut = tmp_path / f"cut.{ext}"
    with av.open(str(clip.path)) as src, av.open(str(cut), "w") as dst:
        s_in = src.streams.video[0]
        s_out = dst.add_stream_from_template(s_in)
        for n, packet in enumerate(p for p in src.demux(s_in) if p.dts is not None):
            if n >= 10:
                packet.stream = s_out
                dst.mux(packet)
    with VideoReader(cut) as r:
        assert r.num_frames == clip.num_frames - 25
        assert r.frame_times[0] == 0.0
        frames = r.get_frames_at([0, 5, r.num_frames - 1], output="numpy")
    assert _numbers(frames) == [25, 30, clip.num_frames - 1]
    from videoespresso.video import FpsSampler

    assert [f.index for f in FpsSampler(1).sample(cut).frames] == [0, 25]


def test_sorted_requests_take_one_pass_and_seek_only_to_skip_work(clip):
    # clip: 150 frames, a keyframe every 20.
    with VideoReader(clip.path) as r:
        r.table  # indexing rewinds once; count only what decoding does
        before = r.seeks
        frames = r.get_frames_at(list(range(0, 150, 3)), output="numpy")
        assert _numbers(frames) == list(range(0, 150, 3))
        assert r.seeks - before == 1  # dense request: one forward pass
        before = r.seeks
        assert _numbers(r.get_frames_at([2, 75, 145], output="numpy")) == [2, 75, 145]
        assert r.seeks - before == 3  # sparse request: jump to the keyframe before each frame


def test_bad_size_or_output_is_rejected_before_decoding(clip):
    with VideoReader(clip.path) as r:
        with pytest.raises(ValueError, match="positive"):
            r.get_frames_at([1], size=0)
        with pytest.raises(ValueError, match="output"):
            r.get_frames_at([1], output="jpeg")  # type: ignore[arg-type]
        assert r.seeks == 0
