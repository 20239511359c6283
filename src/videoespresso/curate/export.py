"""Export: the rich JSONL records, both train-JSON versions and the close-ended test file.

* ``dataset.jsonl``: one record per QA pair: a :class:`~videoespresso.schema.QAPair`, its
  :class:`~videoespresso.schema.CoTAnnotation` (frames with index and seconds, key objects with
  boxes), the four options, the judges' verdicts, warnings and provenance;
* ``train_video.json``: the video version (``video_path`` + ``keyframes_path``);
* ``train_images.json``: the multi-image version (``path``), with the core frames copied to
  ``keyframes/<video>/<frame index>.jpg`` as the authors named them;
* ``test.json``: ``bench_hard.json``'s shape, four options (the reference answer and three
  distractors) shuffled with a per-item seed.

The train files and ``test.json`` hold disjoint items, split **by video content**
(:func:`split_videos` over :func:`video_digests`): questions about one video share its frames
and story, so a per-item split would leak test answers into training, and the same bytes under
two names (or one file reached by two paths) would leak it again if the split went by name.
``dataset.jsonl`` holds every item with its ``split``.

Every file is written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..engine.stage import PROVENANCE, WARNINGS
from ..errors import UserError
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
#: The sha256 of each video file, kept in the build folder so a rerun hashes only what changed.
VIDEO_HASHES = "video_hashes.json"
#: 1: by file name, with a "neither side empty" rule that moved videos; 2: by content, pure.
SPLIT_VERSION = 2


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


def split_videos(keys: Iterable[str], test_ratio: float, seed: int = 0) -> dict[str, str]:
    """``key -> "train" | "test"`` for content keys (:func:`video_digests`), seeded and pure.

    A key's side depends only on the key and the seed (a hash in [0, 1) below ``test_ratio``
    means test), never on the other keys: adding or removing videos moves none of the others.
    There is no "neither side empty" rule (any such rule moves a video when others are added),
    so a build of a few videos can have an empty side: about ``test_ratio`` of the videos go to
    test on average, not exactly.
    """
    def position(key: str) -> float:
        digest = hashlib.sha256(f"{seed}:{key}".encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64

    return {key: "test" if position(key) < test_ratio else "train" for key in set(keys)}


def video_digests(paths: Iterable[str], cache: Path | None = None) -> dict[str, str]:
    """``path -> "sha256:<hex>"`` of each video file's bytes (all of them, streamed).

    Paths that resolve to one file are hashed once. ``cache`` (a JSON file) remembers each
    file's digest with its size and modification time; a file whose size or time changed is
    hashed again, as ``build`` rebuilds a replaced video. A video that cannot be read is refused
    with its reason: without its content it has no place in the split.
    """
    from ..formats.jsonl import write_json_atomic
    from ..formats.manifest import file_sha256

    known = _read_hash_cache(cache)
    fresh: dict[str, dict[str, Any]] = {}
    out: dict[str, str] = {}
    for path in dict.fromkeys(paths):
        real = os.path.realpath(path)
        try:
            info = os.stat(real)
            entry = fresh.get(real) or known.get(real)
            if not (entry and entry.get("size") == info.st_size and entry.get("mtime_ns") == info.st_mtime_ns):
                entry = {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256": file_sha256(real)}
        except OSError as exc:
            raise UserError(f"{path}: cannot read the video to place it in the train/test split "
                            f"(the split is keyed on each video's content): {exc.strerror or exc}") from None
        fresh[real] = entry
        out[path] = f"sha256:{entry['sha256']}"
    if cache is not None and fresh != known:
        write_json_atomic(cache, {"format": "videoespresso.video-hashes", "split_version": SPLIT_VERSION,
                                  "files": dict(sorted(fresh.items()))})
    return out


def _read_hash_cache(cache: Path | None) -> dict[str, dict[str, Any]]:
    if cache is None or not cache.is_file():
        return {}
    try:
        data = json.loads(cache.read_text("utf-8"))
    except (OSError, ValueError):
        return {}  # a damaged cache only costs hashing again
    files = data.get("files") if isinstance(data, dict) else None
    return {k: v for k, v in files.items() if isinstance(v, dict)} if isinstance(files, dict) else {}


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
    digests = video_digests([item["video"] for item in items], root / VIDEO_HASHES)
    splits = split_videos(digests.values(), test_ratio, split_seed)
    records = [{**to_records(item, seed), "split": splits[digests[item["video"]]]} for item in items]
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
