"""Bad input: one typed error per file, naming the file and the reason; nothing hangs."""

from __future__ import annotations

import pytest

from videoespresso.errors import UserError, VideoError
from videoespresso.video import (
    CorruptVideoError,
    EmptyVideoError,
    FrameCountMismatchError,
    NoVideoStreamError,
    VideoNotFoundError,
    VideoReader,
    probe,
    sample_frames,
)
from videoespresso.video.synth import make_bad_video

CASES = [
    ("empty", EmptyVideoError, "empty"),
    ("text", CorruptVideoError, "not a readable video"),
    ("truncated", CorruptVideoError, "not a readable video"),
    ("lying_count", FrameCountMismatchError, "claims 100 frames but its data holds"),
    ("audio_only", NoVideoStreamError, "no video stream"),
]


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    for kind, _, _ in CASES:
        make_bad_video(folder / f"{kind}.mp4", kind)
    return folder


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind, error, fragment", CASES)
def test_each_bad_file_raises_one_typed_error(bad_dir, kind, error, fragment):
    path = bad_dir / f"{kind}.mp4"
    calls = [
        lambda: probe(path, count_frames=True),
        lambda: VideoReader(path).get_frames_at([0]),
        lambda: sample_frames(path, "fps:1"),
        lambda: sample_frames(path, "adaptive"),
        lambda: sample_frames(path, "uniform:8"),
    ]
    for call in calls:
        with pytest.raises(error, match=fragment) as info:
            call()
        assert str(path) in str(info.value)
        assert isinstance(info.value, VideoError) and isinstance(info.value, UserError)


def test_header_probe_of_a_lying_file_is_fast_and_the_count_exposes_it(bad_dir):
    path = bad_dir / "lying_count.mp4"
    info = probe(path)  # the header alone cannot know
    assert info.num_frames == 100
    with pytest.raises(FrameCountMismatchError):
        probe(path, count_frames=True)
    # A lenient reader uses what is there.
    with VideoReader(path, strict=False) as r:
        assert 0 < r.num_frames < 100
        assert len(r.get_frames_at([0, 5])) == 2


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(VideoNotFoundError, match=r"nothere\.mp4: no such file"):
        probe(tmp_path / "nothere.mp4")
    with pytest.raises(VideoNotFoundError, match="not a regular file"):
        VideoReader(tmp_path)
    with pytest.raises(VideoNotFoundError):
        sample_frames(tmp_path / "nothere.mp4", "fps:1")
