"""The baseline: ``k`` uniformly spaced frames by the official evaluation rule."""

from __future__ import annotations

import os
from typing import Sequence

from ..schema import Caption, FrameRef, Selection
from .base import FrameSelector, open_reader, uniform_indices


class UniformSelector(FrameSelector):
    """``numpy.linspace(0, n - 1, k)`` rounded down (the official script's sampling).

    When ``candidates`` are given, the rule runs over them instead of over all frames.
    Every frame scores 1.0: uniform sampling does not rank.
    """

    name = "uniform"

    def __init__(self, frames: int = 16) -> None:
        if frames < 1:
            raise ValueError(f"uniform selector needs at least 1 frame, got {frames}")
        super().__init__(frames=frames)
        self.frames = frames

    def select(
        self,
        video: "str | os.PathLike[str]",
        question: str,
        *,
        item_id: str | None = None,
        options: Sequence[str] | None = None,
        candidates: Sequence[FrameRef] | None = None,
        captions: Sequence[str | Caption] | None = None,
    ) -> Selection:
        if candidates is not None:
            pool = sorted(candidates, key=lambda r: r.index)
            refs = [pool[i] for i in uniform_indices(len(pool), self.frames)]
        else:
            with open_reader(video) as reader:
                refs = reader.refs(uniform_indices(reader.num_frames, self.frames))
        return self._selection(video, question, item_id, refs, [1.0] * len(refs))
