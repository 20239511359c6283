"""Export: the rich JSONL records, both train-JSON versions and the close-ended test file.

* ``dataset.jsonl``: one record per QA pair: a :class:`~videoespresso.schema.QAPair`, its
  :class:`~videoespresso.schema.CoTAnnotation` (frames with index and seconds, key objects with
  boxes), the four options, the judges' verdicts, warnings and provenance;
* ``train_video.json``: the video version (``video_path`` + ``keyframes_path``);
* ``train_images.json``: the multi-image version (``path``), with the core frames copied to
  ``keyframes/<video>/<frame index>.jpg`` as the authors named them;
* ``test.json``: ``bench_hard.json``'s shape, four options (the reference answer and three
  distractors) shuffled with a per-item seed.

The train files and ``test.json`` hold disjoint items, split **by video** (:func:`split_videos`):
questions about one video share its frames and story, so a per-item split would leak test
answers into training. ``dataset.jsonl`` holds every item with its ``split``.

Every file is written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..engine.stage import PROVENANCE, WARNINGS
from ..formats.bench import write_bench
from ..formats.jsonl import write_jsonl_atomic
from ..formats.train import write_train
from ..schema import LETTERS, BenchItem, CoTAnnotation, FrameRef, KeyObject, QAPair, TrainItem
from ._common import frame_path
from .sample import safe_name

DATASET = "dataset.jsonl"
TRAIN_VIDEO = "train_video.json"
TRAIN_IMAGES = "train_images.json"
TEST = "test.json"


@dataclass
class ExportResult:
    items: int
    files: dict[str, Path]
    train: int = 0
    test: int = 0


def shuffled_options(item_id: str, answer: str, distractors: Sequence[str], seed: int) -> tuple[list[str], str]:
    """The four options in a seeded order that depends only on ``seed`` and the item id."""
    options = [answer, *distractors[:3]]
    order = list(range(4))
    random.Random(f"{seed}:{item_id}").shuffle(order)
    return [options[i] for i in order], LETTERS[order.index(0)]


def split_videos(video_ids: Sequence[str], test_ratio: float, seed: int = 0) -> dict[str, str]:
    """``video id -> "train" | "test"``, seeded and stable.

    Each video's place depends only on the seed and its id (a hash in [0, 1) below
    ``test_ratio`` means test), so adding videos never moves the others. With at least two
    videos and ``0 < test_ratio < 1`` neither side is left empty: the video whose hash lies
    nearest the threshold changes sides.
    """
    def position(video: str) -> float:
        digest = hashlib.sha256(f"{seed}:{video}".encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64

    ids = sorted(set(video_ids))
    pos = {v: position(v) for v in ids}
    split = {v: "test" if pos[v] < test_ratio else "train" for v in ids}
    if len(ids) >= 2 and 0.0 < test_ratio < 1.0:
        for side, other in (("test", "train"), ("train", "test")):
            if side not in split.values():
                nearest = min(ids, key=lambda v: abs(pos[v] - test_ratio))
                split[nearest] = side
    return split


def _frame(f: dict[str, Any]) -> FrameRef:
    return FrameRef(index=f["index"], seconds=f["seconds"], path=f.get("path"))


def to_records(item: dict[str, Any], seed: int) -> dict[str, Any]:
    qa = QAPair(
        id=item["id"], video=item["video_path"], question=item["question"], answer=item["answer"],
        task=item["task"], frames=[_frame(f) for f in item["qa_frames"]],
    )
    cot = CoTAnnotation(
        core_frames=[_frame(f) for f in item["core_frames"]],
        core_captions=list(item["core_captions"]),
        key_objects=[
            KeyObject(name=o["name"], boxes=o["boxes"], frame=_frame(o["frame"]) if o.get("frame") else None)
            for o in item["key_objects_grounded"]
        ],
        evidence=item["evidence"],
    )
    options, letter = shuffled_options(item["id"], item["answer"], item["distractors"], seed)
    return {
        "qa": qa.model_dump(mode="json"),
        "cot": cot.model_dump(mode="json"),
        "options": options,
        "correct_answer": letter,
        "judgements": item.get("judgements", []),
        "warnings": item.get(WARNINGS, []),
        "provenance": item.get(PROVENANCE, {}),
    }


def export(
    items: Sequence[dict[str, Any]], root: Path, seed: int = 0, *, test_ratio: float = 0.2, split_seed: int = 0,
    frames_root: str | None = None,
) -> ExportResult:
    """Write the four files into ``root``; ``frames_root`` is the fsspec URL holding the frames
    when they are not under ``root``."""
    root = Path(root)
    items = sorted(items, key=lambda i: i["id"])
    splits = split_videos([item["video_id"] for item in items], test_ratio, split_seed)
    records = [{**to_records(item, seed), "split": splits[item["video_id"]]} for item in items]
    train_video: list[TrainItem] = []
    train_images: list[TrainItem] = []
    bench: list[BenchItem] = []
    for item, rec in zip(items, records):
        core = item["core_frames"]
        frame_files = [f["path"] for f in core]
        copies = _copy_keyframes(root, item["video_id"], core, frames_root)
        common = {
            "question": item["question"], "answer": item["answer"], "evidence": item["evidence"],
            "task": item["task"], "captions": list(item["core_captions"]),
        }
        extra = {
            "id": item["id"],
            "keyframes_index": [f["index"] for f in core],
            "keyframes_seconds": [f["seconds"] for f in core],
        }
        if rec["split"] == "train":
            train_video.append(TrainItem(video_path=item["video_path"], keyframes=frame_files,
                                         keyframes_key="keyframes_path", extra=extra, **common))
            train_images.append(TrainItem(video_path=item["video_path"], keyframes=copies,
                                          keyframes_key="path", extra=extra, **common))
            continue
        bench.append(BenchItem(
            id=item["id"], video_path=item["video_path"], question=item["question"],
            options=rec["options"], correct_answer=rec["correct_answer"], answer=item["answer"],
            evidence=item["evidence"], task=item["task"], core_frames_paths=copies,
            core_frames_captions=list(item["core_captions"]),
            extra={"key_objects": rec["cot"]["key_objects"]},
        ))
    files = {
        "dataset": root / DATASET, "train_video": root / TRAIN_VIDEO,
        "train_images": root / TRAIN_IMAGES, "test": root / TEST,
    }
    write_jsonl_atomic(files["dataset"], records)
    write_train(train_video, files["train_video"])
    write_train(train_images, files["train_images"])
    write_bench(bench, files["test"])
    return ExportResult(items=len(records), files=files, train=len(train_video), test=len(bench))


def _copy_keyframes(
    root: Path, video_id: str, frames: Sequence[dict[str, Any]], frames_root: str | None = None
) -> list[str]:
    folder = Path("keyframes") / safe_name(video_id)
    (root / folder).mkdir(parents=True, exist_ok=True)
    out = []
    for f in frames:
        rel = folder / f"{f['index']}.jpg"
        target = root / rel
        if not target.exists():
            tmp = target.with_suffix(".tmp")
            if frames_root is not None and not Path(f["path"]).is_absolute():
                from ..engine.storage import get_file

                get_file(f"{frames_root}/{f['path']}", tmp)
            else:
                shutil.copyfile(frame_path(root, f), tmp)
            tmp.replace(target)
        out.append(rel.as_posix())
    return out
