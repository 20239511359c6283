"""``uniform:k``: k frames spread evenly over the video, under a named convention.

Conventions (``n`` frames in the video, ``k`` wanted):

* ``official`` (default): ``numpy.linspace(0, n - 1, k)`` truncated to int, the index rule of
  the VideoEspresso evaluation script (its frame *count* is per video: the ``official``
  sampler). First and last frame included; with ``k > n`` indices repeat (the rule is kept
  exactly).
* ``vlmevalkit``: ``int(i * n / (k + 1))`` for ``i = 1..k`` (VLMEvalKit's video datasets): the
  ends are skipped, frames sit at the inner points of k + 1 equal parts.
* ``transformers``: ``arange(k) * n // k`` (transformers' ``default_sample_indices_fn``): the
  start of each of k equal parts. transformers refuses ``k > n``; here k is capped at n.
* ``rounded``: ``numpy.linspace(0, n - 1, k)`` rounded to the nearest int (qwen-vl-utils'
  rule for Qwen2-VL).
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np

from ..reader import VideoReader
from .base import Sampler


def _official(n: int, k: int) -> np.ndarray:
    return np.linspace(0, n - 1, k).astype(int)


def _vlmevalkit(n: int, k: int) -> np.ndarray:
    step = n / (k + 1)
    return np.asarray([int(i * step) for i in range(1, k + 1)], dtype=int)


def _transformers(n: int, k: int) -> np.ndarray:
    k = min(k, n)
    return np.arange(k, dtype=int) * n // k


def _rounded(n: int, k: int) -> np.ndarray:
    return np.round(np.linspace(0, n - 1, k)).astype(int)


CONVENTIONS: dict[str, Callable[[int, int], np.ndarray]] = {
    "official": _official,
    "vlmevalkit": _vlmevalkit,
    "transformers": _transformers,
    "rounded": _rounded,
}


def uniform_indices(n: int, k: int, convention: str = "official") -> list[int]:
    """The k indices a convention picks from n frames (sorted)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown uniform convention {convention!r}; known: {', '.join(CONVENTIONS)}")
    if n <= 0 or k <= 0:
        raise ValueError(f"need n > 0 frames and k > 0 samples, got n={n}, k={k}")
    return [int(i) for i in np.sort(CONVENTIONS[convention](n, k))]


class UniformSampler(Sampler):
    """k frames evenly spread by frame index (see the module for the conventions)."""

    name: ClassVar[str] = "uniform"

    def __init__(self, k: int, convention: str = "official"):
        if k <= 0:
            raise ValueError(f"uniform sampling needs k > 0, got {k}")
        if convention not in CONVENTIONS:
            raise ValueError(f"unknown uniform convention {convention!r}; known: {', '.join(CONVENTIONS)}")
        self.k = int(k)
        self.convention = convention

    @property
    def params(self) -> dict[str, Any]:
        return {"k": self.k, "convention": self.convention}

    @property
    def spec(self) -> str:
        return f"uniform:{self.k}" + ("" if self.convention == "official" else f":{self.convention}")

    def choose(self, reader: VideoReader) -> list[int]:
        return uniform_indices(reader.num_frames, self.k, self.convention)
