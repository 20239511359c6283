"""Stage 1: sample frames at an adaptive rate and write them as JPEGs named by index and time."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from ..engine import Item, Resources, Stage, derive, failed
from ..engine.storage import as_root, put_tree
from ..errors import VideoError


def safe_name(item_id: str) -> str:
    """A file-system-safe folder name for an item id."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", item_id).strip("._") or "item"


class SampleFrames(Stage):
    """Video -> sampled frames (index + seconds + JPEG path, relative to the build root).

    Frames are written by :func:`videoespresso.video.sample_frames` as
    ``frames/<video>/f<index>_t<seconds>.jpg`` with a ``frames.json`` sidecar.

    Static stretches are sampled at ``static_fps``, dynamic ones at ``dynamic_fps``
    (:class:`videoespresso.video.AdaptiveSampler` decides which is which). A video that cannot be
    decoded, or yields no frame, fails with a reason.
    """

    name = "sample"
    version = "1"

    def __init__(
        self,
        root: Path,
        static_fps: float = 1.0,
        dynamic_fps: float = 3.0,
        motion_threshold: float | None = None,
        max_side: int | None = 448,
        resources: Resources | None = None,
    ) -> None:
        super().__init__(resources or Resources(cpus=1, batch_size=1))
        self.root = as_root(root)  # a folder, or an fsspec URL the frames are uploaded to
        self.static_fps = static_fps
        self.dynamic_fps = dynamic_fps
        self.motion_threshold = motion_threshold
        self.max_side = max_side

    def params(self) -> dict[str, Any]:
        return {
            "static_fps": self.static_fps, "dynamic_fps": self.dynamic_fps,
            "motion_threshold": self.motion_threshold, "max_side": self.max_side,
        }

    def process_item(self, item: Item) -> list[Item]:
        from ..video import AdaptiveSampler, path_problem, probe, sample_frames

        video = item["video"]
        problem = path_problem(video)
        if problem is not None:
            return [failed(item, "missing_video", f"{video}: {problem}")]
        sampler = AdaptiveSampler(self.static_fps, self.dynamic_fps, self.motion_threshold)
        folder = Path("frames") / safe_name(item["id"])
        try:
            with self.timed("decode"):
                info = probe(video)
                if isinstance(self.root, str):
                    # A URL: sample into a private folder, then upload (a worker needs no shared disk).
                    with tempfile.TemporaryDirectory(prefix="ve-frames-") as tmp:
                        sampled, _images = sample_frames(video, sampler, out_dir=Path(tmp), size=self.max_side)
                        put_tree(Path(tmp), f"{self.root}/{folder.as_posix()}")
                else:
                    sampled, _images = sample_frames(video, sampler, out_dir=self.root / folder, size=self.max_side)
        except VideoError as exc:
            return [failed(item, "unreadable_video", str(exc))]
        if not sampled.frames:
            return [failed(item, "no_frames", f"{video}: the sampler returned no frame")]
        frames = [
            {"index": f.index, "seconds": f.seconds, "path": (folder / Path(f.path or "").name).as_posix()}
            for f in sampled.frames
        ]
        return [derive(
            item,
            info=info.model_dump(mode="json"),
            sampler={"name": sampled.sampler, "params": sampled.params},
            frames=frames,
        )]
