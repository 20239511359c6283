"""Train JSON files: the video version (``videoespresso_train_video.json``) and the multi-image
version (``merged_ano_all.json``). Keyframes are spelled ``path`` or ``keyframes_path``; captions
``caption``. Both spellings and unknown fields survive a read/write round trip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ..schema import TrainItem
from ._io import load_json_list, raise_problems, require_str, str_list
from .jsonl import write_json_atomic

KNOWN_FIELDS = ("video_path", "path", "keyframes_path", "caption", "question", "answer", "evidence", "task")


def parse_train_item(raw: Any, where: str, problems: list[str]) -> TrainItem | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: not a JSON object")
        return None
    start = len(problems)
    question = require_str(raw, "question", where, problems)
    answer = require_str(raw, "answer", where, problems)
    key = "keyframes_path" if "keyframes_path" in raw else "path"
    if "keyframes_path" in raw and "path" in raw:
        problems.append(f"{where}: has both 'path' and 'keyframes_path'")
    keyframes = str_list(raw, key, where, problems)
    captions = str_list(raw, "caption", where, problems)
    text_fields = {}
    for name in ("video_path", "evidence", "task"):
        value = raw.get(name, "")
        if not isinstance(value, str):
            problems.append(f"{where}: field {name!r} must be a string")
        text_fields[name] = value
    if len(problems) > start:
        return None
    return TrainItem(
        video_path=text_fields["video_path"],
        keyframes=keyframes,
        keyframes_key=key,
        captions=captions,
        question=question,
        answer=answer,
        evidence=text_fields["evidence"],
        task=text_fields["task"],
        extra={k: v for k, v in raw.items() if k not in KNOWN_FIELDS},
    )


def read_train(path: str | Path) -> list[TrainItem]:
    data = load_json_list(path, "train")
    if not isinstance(data, list):
        raise_problems(path, "train", ["the top level must be a JSON list of items"])
    problems: list[str] = []
    items = []
    for index, raw in enumerate(data):
        item = parse_train_item(raw, f"item {index}", problems)
        if item is not None:
            items.append(item)
    raise_problems(path, "train", problems)
    return items


def train_item_to_json(item: TrainItem) -> dict[str, Any]:
    out: dict[str, Any] = {"video_path": item.video_path} if item.video_path else {}
    out |= {
        item.keyframes_key: list(item.keyframes),
        "caption": list(item.captions),
        "question": item.question,
        "answer": item.answer,
        "evidence": item.evidence,
        "task": item.task,
    }
    out.update(item.extra)
    return out


def write_train(items: Iterable[TrainItem], path: str | Path) -> None:
    write_json_atomic(path, [train_item_to_json(i) for i in items], indent=2)
