"""``fps:r``: one frame every 1/r seconds, the frame nearest each target time.

Targets are ``0, 1/r, 2/r, ...`` up to the end of the video, measured on the frames' real
presentation times, so the rule is right on variable-frame-rate files. When two targets share a
nearest frame (r above the local frame rate) the frame is kept once.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..reader import VideoReader
from .base import Sampler


def time_grid(duration_s: float, rate: float, start_s: float = 0.0) -> np.ndarray:
    """Target times ``start, start + 1/rate, ...`` strictly before ``duration_s``."""
    count = int(np.ceil((duration_s - start_s) * rate - 1e-9))
    return start_s + np.arange(max(count, 0)) / rate


def nearest_indices(times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index of the frame time nearest each target (ties to the earlier frame)."""
    if len(times) == 1:
        return np.zeros(len(targets), dtype=int)
    right = np.clip(np.searchsorted(times, targets), 1, len(times) - 1)
    left = right - 1
    pick_left = (targets - times[left]) <= (times[right] - targets)
    return np.where(pick_left, left, right)


class FpsSampler(Sampler):
    """A fixed rate in frames per second (the paper's 1 fps by default)."""

    name: ClassVar[str] = "fps"

    def __init__(self, fps: float = 1.0):
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps = float(fps)

    @property
    def params(self) -> dict[str, Any]:
        return {"fps": self.fps}

    @property
    def spec(self) -> str:
        return f"fps:{self.fps:g}"

    def choose(self, reader: VideoReader) -> list[int]:
        targets = time_grid(reader.duration_s, self.fps)
        idx = nearest_indices(reader.frame_times, targets)
        return [int(i) for i in np.unique(idx)]
