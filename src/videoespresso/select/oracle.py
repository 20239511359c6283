"""The annotated core frames of an item: the upper bound a selector can reach.

Where the annotation records times (our own built data: :class:`~videoespresso.schema.QAPair`
frames, or any list of :class:`~videoespresso.schema.FrameRef`), each core frame is the video
frame nearest its time. The official test file records neither times nor the fps its frame
numbers refer to, only the core frames' captions; those are matched to the candidates' captions
with a text embedder (each core caption picks its most similar candidate; the score is the
cosine similarity). Core-frame file names that are numbers (``480.jpg``) are frame indices at
``frame_fps`` frames per second, 1 by default: the maintainers say the videos were sampled at 1
fps and the core frames are those sampled frames. A name whose time lies past the end of the
video shows the fps is wrong for that file; the captions are matched instead. ``frame_fps=None``
always matches captions.
"""

from __future__ import annotations

import os
import re
from pathlib import PurePosixPath
from typing import Any, Iterable, Mapping, Sequence, Union

import numpy as np

from ..schema import BenchItem, Caption, FrameRef, GenerationSettings, QAPair, Selection
from .base import (
    CandidateMixin,
    FrameSelector,
    SelectionError,
    open_reader,
)

OracleItem = Union[BenchItem, QAPair, Sequence[FrameRef]]
_NUMBER_RE = re.compile(r"^\d+(\.\d+)?$")


class OracleSelector(CandidateMixin, FrameSelector):
    """Selects an item's annotated core frames, found by ``item_id`` (or by question text)."""

    name = "oracle"

    def __init__(
        self,
        items: Mapping[str, OracleItem] | Iterable[BenchItem | QAPair] = (),
        *,
        embedder: Any = None,
        captioner: Any = None,
        candidates: int = 16,
        image_size: int | None = 448,
        frame_fps: float | None = 1.0,
        settings: GenerationSettings | None = None,
    ) -> None:
        super().__init__(
            candidates=candidates,
            frame_fps=frame_fps,
            embedder=getattr(embedder, "spec", None),
            captioner=getattr(captioner, "spec", None),
        )
        self.items: dict[str, OracleItem] = {}
        self.add_items(items)
        self.embedder = embedder
        self.captioner = captioner
        self.num_candidates = candidates
        self.image_size = image_size
        self.frame_fps = frame_fps
        self.settings = settings or GenerationSettings(max_new_tokens=48)

    def add_items(self, items: Mapping[str, OracleItem] | Iterable[BenchItem | QAPair]) -> None:
        if isinstance(items, Mapping):
            self.items.update(items)
        else:
            for item in items:
                self.items[item.id] = item

    def _find(self, item_id: str | None, question: str) -> OracleItem:
        if item_id is not None and item_id in self.items:
            return self.items[item_id]
        if item_id is None:
            matches = [
                item for item in self.items.values()
                if isinstance(item, (BenchItem, QAPair)) and item.question == question
            ]
            if len(matches) == 1:
                return matches[0]
        raise SelectionError(
            f"oracle selector: no annotated item {item_id or question!r} "
            f"(it knows {len(self.items)} items)"
        )

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
        item = self._find(item_id, question)
        times = self._recorded_times(item)
        with open_reader(video) as reader:
            if times and isinstance(item, BenchItem) and past_end(times, reader.duration_s):
                # File-name indices past the end: frame_fps is not the fps this file counts in.
                if not item.core_frames_captions:
                    raise SelectionError(
                        f"oracle selector: item {item_id or question!r}: core frame at {max(times):g} s "
                        f"(file-name index at {self.frame_fps:g} fps) is past the video's end "
                        f"({reader.duration_s:g} s) and there are no captions to match instead"
                    )
                times = []
            if times:
                refs = reader.refs([reader.index_nearest(t) for t in times])
                return self._selection(
                    video, question, item_id, refs, [1.0] * len(refs), extra={"located_by": "time"}
                )
            core = list(item.core_frames_captions) if isinstance(item, BenchItem) else []
            if not core:
                raise SelectionError(
                    f"oracle selector: item {item_id or question!r} has neither core-frame times "
                    "nor core-frame captions"
                )
            if self.embedder is None:
                raise SelectionError(
                    f"oracle selector: item {item_id or question!r} must be located by its "
                    "captions and no text embedder is set"
                )
            refs, texts, more = self.captioned_candidates(
                reader, video, candidates, captions, self.captioner, self.settings,
                "oracle selector: no candidate captions given and no captioner set",
            )
            extra = {"located_by": "caption", **more}
        positions, scores = match_captions(self.embedder, core, texts)
        return self._selection(
            video, question, item_id, [refs[j] for j in positions], scores, extra=extra
        )

    def _recorded_times(self, item: OracleItem) -> list[float]:
        if isinstance(item, QAPair):
            return [f.seconds for f in item.frames]
        if isinstance(item, BenchItem):
            return times_from_names(item.core_frames_paths, self.frame_fps)
        return [f.seconds for f in item]


def times_from_names(paths: Sequence[str], frame_fps: float | None) -> list[float]:
    """Times of core frames whose file names are all frame numbers (``480.jpg``) at
    ``frame_fps`` frames per second; ``[]`` when any name is not a number (then the captions
    locate them) or ``frame_fps`` is None. Shared with the selector's training examples
    (:mod:`videoespresso.train.examples`), so a keyframe is located the same way there."""
    if frame_fps is None:
        return []
    stems = [PurePosixPath(p).stem for p in paths]
    if not stems or not all(_NUMBER_RE.match(s) for s in stems):
        return []
    return [float(s) / frame_fps for s in stems]


def past_end(times: Sequence[float], duration_s: float) -> bool:
    """Whether file-name times run past the video's end (by more than a second): the names then
    count frames at another rate than ``frame_fps``, and the captions must locate the frames."""
    return bool(times) and max(times) > duration_s + 1.0


def match_captions(embedder: Any, core: Sequence[str], candidates: Sequence[str]) -> tuple[list[int], list[float]]:
    """For each core-frame caption, the position of the most similar candidate caption and the
    cosine similarity (the embedder's vectors are unit length), in core order."""
    vectors = np.asarray(embedder.embed([*core, *candidates]), dtype=np.float32)
    similarity = vectors[: len(core)] @ vectors[len(core):].T
    best = similarity.argmax(axis=1)
    return [int(j) for j in best], [float(similarity[i, j]) for i, j in enumerate(best)]
