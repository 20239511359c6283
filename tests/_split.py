"""A split seed for tests that need both sides of the train/test split.

The split is a pure function of each video's content and the seed (curate/export.py), so a
build of three videos can put all of them on one side; such a test asks for a seed instead.
"""

from __future__ import annotations

from pathlib import Path


def seed_with_test_video(videos: list[Path], *test: Path, ratio: float = 0.2) -> int:
    """The first ``curate.split_seed`` that puts the ``test`` videos in test, the others in train."""
    from videoespresso.curate.export import split_videos, video_digests

    digests = video_digests(str(v) for v in videos)
    for seed in range(10_000):
        sides = split_videos(digests.values(), ratio, seed)
        if all((sides[digests[str(v)]] == "test") == (v in test) for v in videos):
            return seed
    raise AssertionError(f"no split seed puts only {', '.join(map(str, test))} in test")
