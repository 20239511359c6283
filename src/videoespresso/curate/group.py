"""Stage 4: cut each video's kept frames into groups of consecutive captions (1 video -> M)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ..engine import Item, Resources, Stage, dropped
from ..engine.stage import WARNINGS
from ..engine.storage import as_root
from ..schema import FrameRef, GroupItem, VideoPool
from .pool import write_pool


def group_spans(n: int, size: int, overlap: int, min_size: int) -> list[tuple[int, int]]:
    """``[start, end)`` spans of ``size`` items, ``overlap`` shared with the previous span.

    A tail shorter than ``min_size`` is folded into the span before it, so every group can carry
    a question that needs several frames.
    """
    step = max(1, size - overlap)
    spans: list[tuple[int, int]] = []
    start = 0
    while start < n:
        end = min(n, start + size)
        spans.append((start, end))
        if end == n:
            break
        start += step
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < min_size:
        last = spans.pop()
        spans[-1] = (spans[-1][0], last[1])
    return spans


class GroupCaptions(Stage):
    """A captioned, deduplicated video -> :class:`~videoespresso.schema.GroupItem` records.

    The video's whole caption pool (every sampled frame and its caption) is written once, to a
    file under the build root (:mod:`.pool`); each group refers to it by sha instead of
    carrying a copy.
    """

    name = "group"
    #: 2: the pool is referenced (``pool``), no longer copied into ``all_frames``/``all_captions``.
    version = "2"
    output_record: ClassVar[type[GroupItem]] = GroupItem

    def __init__(
        self, root: Path | str, size: int = 15, overlap: int = 0, min_frames: int = 2,
        resources: Resources | None = None,
    ) -> None:
        super().__init__(resources or Resources(batch_size=64))
        self.root = as_root(root)
        if overlap >= size:
            raise ValueError(f"group overlap ({overlap}) must be smaller than the group size ({size})")
        self.size, self.overlap, self.min_frames = size, overlap, min_frames

    def params(self) -> dict[str, Any]:
        return {"size": self.size, "overlap": self.overlap, "min_frames": self.min_frames}

    def process_item(self, item: Item) -> list[Item]:
        kept = item["kept"]
        if len(kept) < self.min_frames:
            return [dropped(
                item, "too_few_frames",
                f"{item['video']}: {len(kept)} distinct frame(s) after redundancy removal, "
                f"a question needs at least {self.min_frames}",
            )]
        every = [FrameRef.model_validate(f) for f in item["frames"]]
        pool = write_pool(self.root, VideoPool(video_id=item["id"], frames=every, captions=item["captions"]))
        frames = [every[p] for p in kept]
        captions = [item["captions"][p] for p in kept]
        return [
            self.output_record(
                id=f"{item['id']}#g{g:03d}", source=item["id"], video_id=item["id"], video=item["video"],
                video_path=item.get("video_path", item["video"]), duration_s=item["info"]["duration_s"],
                group=g, frames=frames[start:end], captions=captions[start:end], pool=pool,
                warnings=list(item.get(WARNINGS, [])),
            ).item()
            for g, (start, end) in enumerate(group_spans(len(kept), self.size, self.overlap, self.min_frames))
        ]
