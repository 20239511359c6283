"""``official``: the VideoEspresso evaluation script's per-video frame count.

The official ``eval/eval.py`` does not take a fixed k. For a clip of ``n`` frames lasting
``duration = n / avg_fps`` seconds it takes ``k = min(128, int(24 * duration) + 1)`` frames, or
24 frames when the clip is shorter than 0.5 s, at ``numpy.linspace(0, n - 1, k, dtype=int)``
(first and last frame included, indices truncated; with ``k > n`` indices repeat, as there).
Our reader's ``duration_s`` is exactly ``n / avg_fps`` (its average rate is defined that way).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..reader import VideoReader
from .base import Sampler

#: The script's ``fps`` constant: frames per second of video it asks for.
FRAMES_PER_SECOND = 24
#: The script's cap on frames per clip.
MAX_FRAMES = 128
#: Clips shorter than this (seconds) get ``FRAMES_PER_SECOND`` frames.
SHORT_CLIP_S = 0.5


def official_frame_count(duration_s: float, *, max_frames: int = MAX_FRAMES) -> int:
    """How many frames the official script takes from a clip of ``duration_s`` seconds."""
    if duration_s < SHORT_CLIP_S:
        return FRAMES_PER_SECOND
    return min(max_frames, int(FRAMES_PER_SECOND * duration_s) + 1)


def official_indices(num_frames: int, duration_s: float, *, max_frames: int = MAX_FRAMES) -> list[int]:
    """The frame indices the official script decodes (empty for an empty clip, as it returns "")."""
    if num_frames <= 0:
        return []
    k = official_frame_count(duration_s, max_frames=max_frames)
    return [int(i) for i in np.linspace(0, num_frames - 1, k, dtype=int)]


class OfficialSampler(Sampler):
    """The official evaluation's frames: a count that grows with duration, capped at 128."""

    name: ClassVar[str] = "official"

    def __init__(self, max_frames: int = MAX_FRAMES):
        if max_frames <= 0:
            raise ValueError(f"the frame cap must be positive, got {max_frames}")
        self.max_frames = int(max_frames)

    @property
    def params(self) -> dict[str, Any]:
        return {"max_frames": self.max_frames, "per_second": FRAMES_PER_SECOND}

    @property
    def spec(self) -> str:
        return "official" if self.max_frames == MAX_FRAMES else f"official:{self.max_frames}"

    def choose(self, reader: VideoReader) -> list[int]:
        return official_indices(reader.num_frames, reader.duration_s, max_frames=self.max_frames)
