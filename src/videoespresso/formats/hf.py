"""Hugging Face ``datasets`` folders: a build, the benchmark file or a train file as a local
dataset (``save_to_disk`` or Parquet) with the frames as ``Image`` features and the records as
columns, and the way back.

* a **build** (``dataset.jsonl``) becomes a ``DatasetDict`` with ``train`` and ``test`` splits (the
  build's by-video split); each row holds the QA pair, its chain of thought (core frames with index
  and seconds, key objects with boxes, evidence), the four options and the core-frame images;
  :func:`load_build_records` gives back the exact ``dataset.jsonl`` records;
* the **benchmark** file (``bench_hard.json`` shape) becomes one ``test`` split; unknown fields
  travel as one JSON column so :func:`load_bench_items` + ``write_bench`` give back the same JSON;
* a **train** file (both keyframe spellings) becomes one ``train`` split, losslessly too.

Images are stored as bytes (not paths), so the folder is self-contained and moves between
machines. ``datasets`` is imported only here, when a folder is written or read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal, Sequence

from ..errors import FormatError
from ..schema import BenchItem, TrainItem
from .bench import bench_item_to_official, option_text

if TYPE_CHECKING:
    import datasets

Kind = Literal["build", "bench", "train"]
#: Written into ``DatasetInfo.description`` so a reader knows which kind a folder holds.
MARKER = "videoespresso"
FORMATS = ("arrow", "parquet")


def _datasets():
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - the train extra brings it
        raise FormatError(
            "Hugging Face datasets folders need the `datasets` package: pip install 'videoespresso[train]'"
        ) from exc
    return datasets


def _cast(dataset: "datasets.Dataset", features) -> "datasets.Dataset":
    """``dataset.cast`` without its progress bar (a few rows; the bar is noise in a CLI)."""
    from datasets.utils import logging as ds_logging

    shown = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        return dataset.cast(features)
    finally:
        if shown:
            ds_logging.enable_progress_bar()


# --------------------------------------------------------------------------- features


def _frame_feature(ds) -> Any:
    return {"index": ds.Value("int64"), "seconds": ds.Value("float64"), "path": ds.Value("string")}


def _features(kind: Kind):
    ds = _datasets()
    images = ds.List(ds.Image())
    strings = ds.List(ds.Value("string"))
    if kind == "build":
        box = {k: ds.Value("float64") for k in ("x0", "y0", "x1", "y1", "score")}
        key_object = {"name": ds.Value("string"), "boxes": ds.List(box), "frame": _frame_feature(ds)}
        return ds.Features({
            "id": ds.Value("string"), "video": ds.Value("string"), "question": ds.Value("string"),
            "answer": ds.Value("string"), "task": ds.Value("string"), "split": ds.Value("string"),
            "options": strings, "correct_answer": ds.Value("string"),
            "qa_frames": ds.List(_frame_feature(ds)),
            "core_frames": ds.List(_frame_feature(ds)), "core_captions": strings,
            "key_objects": ds.List(key_object), "evidence": ds.Value("string"),
            "core_images": images,
            "judgements": ds.Value("string"), "warnings": ds.Value("string"), "provenance": ds.Value("string"),
        })
    if kind == "bench":
        return ds.Features({
            "id": ds.Value("string"), "video_path": ds.Value("string"), "question": ds.Value("string"),
            "options": strings, "correct_answer": ds.Value("string"), "answer": ds.Value("string"),
            "evidence": ds.Value("string"), "task": ds.Value("string"),
            "core_frames_paths": strings, "core_frames_captions": strings,
            "core_images": images, "extra": ds.Value("string"),
        })
    return ds.Features({
        "video_path": ds.Value("string"), "keyframes": strings, "keyframes_key": ds.Value("string"),
        "caption": strings, "question": ds.Value("string"), "answer": ds.Value("string"),
        "evidence": ds.Value("string"), "task": ds.Value("string"),
        "keyframe_images": images, "extra": ds.Value("string"),
    })


def _images(paths: Sequence[str | None], root: Path | None, where: str, problems: list[str]) -> list[dict]:
    """The frames as ``{"bytes", "path"}`` (empty when any is missing: all or none, in order)."""
    out = []
    for p in paths:
        file = Path(p) if p and Path(p).is_absolute() else (root / p if root is not None and p else None)
        if file is None or not file.is_file():
            problems.append(f"{where}: frame image {p!r} not found; row kept without images")
            return []
        out.append({"bytes": file.read_bytes(), "path": Path(p).name})
    return out


# --------------------------------------------------------------------------- rows


def build_record_to_row(record: dict[str, Any], root: Path | None, problems: list[str]) -> dict[str, Any]:
    qa, cot = record["qa"], record["cot"]
    return {
        "id": qa["id"], "video": qa["video"], "question": qa["question"], "answer": qa["answer"],
        "task": qa["task"], "split": record.get("split", "train"),
        "options": list(record["options"]), "correct_answer": record["correct_answer"],
        "qa_frames": qa["frames"], "core_frames": cot["core_frames"],
        "core_captions": cot["core_captions"], "key_objects": cot["key_objects"],
        "evidence": cot["evidence"],
        "core_images": _images([f.get("path") for f in cot["core_frames"]], root, f"item {qa['id']}", problems),
        "judgements": json.dumps(record.get("judgements", []), ensure_ascii=False),
        "warnings": json.dumps(record.get("warnings", []), ensure_ascii=False),
        "provenance": json.dumps(record.get("provenance", {}), ensure_ascii=False),
    }


def row_to_build_record(row: dict[str, Any]) -> dict[str, Any]:
    """A row back to the ``dataset.jsonl`` record it came from."""
    record: dict[str, Any] = {
        "qa": {
            "id": row["id"], "video": row["video"], "question": row["question"], "answer": row["answer"],
            "task": row["task"], "frames": _rows(row["qa_frames"]),
        },
        "cot": {
            "core_frames": _rows(row["core_frames"]), "core_captions": list(row["core_captions"]),
            "key_objects": [
                {"name": o["name"], "boxes": _rows(o["boxes"]), "frame": o["frame"]} for o in _rows(row["key_objects"])
            ],
            "evidence": row["evidence"],
        },
        "options": list(row["options"]),
        "correct_answer": row["correct_answer"],
        "judgements": json.loads(row["judgements"]),
        "warnings": json.loads(row["warnings"]),
        "provenance": json.loads(row["provenance"]),
        "split": row["split"],
    }
    return record


def _rows(value: Any) -> list[dict[str, Any]]:
    return [dict(v) for v in value]


def bench_item_to_row(item: BenchItem, root: Path | None, problems: list[str]) -> dict[str, Any]:
    official = bench_item_to_official(item)
    return {
        "id": item.id, "video_path": item.video_path, "question": item.question,
        "options": official["options"], "correct_answer": official["correct_answer"],
        "answer": item.answer, "evidence": item.evidence, "task": item.task,
        "core_frames_paths": list(item.core_frames_paths),
        "core_frames_captions": list(item.core_frames_captions),
        "core_images": _images(item.core_frames_paths, root, f"item {item.id}", problems),
        "extra": json.dumps(item.extra, ensure_ascii=False),
    }


def row_to_bench_item(row: dict[str, Any]) -> BenchItem:
    answer = row["correct_answer"].strip().strip("()").upper()
    return BenchItem(
        id=row["id"], video_path=row["video_path"], question=row["question"],
        options=[option_text(o) for o in row["options"]], raw_options=list(row["options"]),
        correct_answer=answer, answer=row["answer"], evidence=row["evidence"], task=row["task"],
        core_frames_paths=list(row["core_frames_paths"]), core_frames_captions=list(row["core_frames_captions"]),
        extra=json.loads(row["extra"]),
    )


def build_row_to_bench_item(row: dict[str, Any]) -> BenchItem:
    """A build row as a benchmark item (what the build's ``test.json`` holds)."""
    record = row_to_build_record(row)
    return BenchItem(
        id=row["id"], video_path=row["video"], question=row["question"], options=list(row["options"]),
        correct_answer=row["correct_answer"], answer=row["answer"], evidence=row["evidence"], task=row["task"],
        core_frames_paths=[f["path"] or "" for f in record["cot"]["core_frames"]],
        core_frames_captions=list(row["core_captions"]),
        extra={"key_objects": record["cot"]["key_objects"]},
    )


def train_item_to_row(item: TrainItem, root: Path | None, problems: list[str]) -> dict[str, Any]:
    return {
        "video_path": item.video_path, "keyframes": list(item.keyframes), "keyframes_key": item.keyframes_key,
        "caption": list(item.captions), "question": item.question, "answer": item.answer,
        "evidence": item.evidence, "task": item.task,
        "keyframe_images": _images(item.keyframes, root, f"item {item.question[:40]!r}", problems),
        "extra": json.dumps(item.extra, ensure_ascii=False),
    }


def row_to_train_item(row: dict[str, Any]) -> TrainItem:
    return TrainItem(
        video_path=row["video_path"], keyframes=list(row["keyframes"]), keyframes_key=row["keyframes_key"],
        captions=list(row["caption"]), question=row["question"], answer=row["answer"],
        evidence=row["evidence"], task=row["task"], extra=json.loads(row["extra"]),
    )


# --------------------------------------------------------------------------- writing


def _dataset(kind: Kind, rows: list[dict[str, Any]]) -> "datasets.Dataset":
    ds = _datasets()
    features = _features(kind)
    info = ds.DatasetInfo(description=json.dumps({MARKER: kind}), features=features)
    return ds.Dataset.from_list(rows, features=features, info=info)


def write_folder(
    kind: Kind, splits: dict[str, list[dict[str, Any]]], out: str | Path, fmt: str = "arrow"
) -> Path:
    """Write ``splits`` (rows per split) as a ``save_to_disk`` folder or a Parquet folder.

    Empty splits are left out. A Parquet folder holds ``<split>.parquet`` files plus
    ``videoespresso.json`` naming the kind;
    ``datasets.load_dataset("parquet", data_dir=out)`` reads it.
    """
    if fmt not in FORMATS:
        raise FormatError(f"unknown HF format {fmt!r}; known: {', '.join(FORMATS)}")
    ds = _datasets()
    out = Path(out)
    # an empty split is left out: datasets writes no shard for it and then cannot load the folder
    built = {name: _dataset(kind, rows) for name, rows in splits.items() if rows}
    if not built:
        raise FormatError(f"{out}: nothing to export (no items)")
    if fmt == "arrow":
        ds.DatasetDict(built).save_to_disk(str(out))
    else:
        out.mkdir(parents=True, exist_ok=True)
        for name, dataset in built.items():
            tmp = out / f".{name}.parquet.tmp"
            dataset.to_parquet(str(tmp))
            tmp.replace(out / f"{name}.parquet")
        (out / f"{MARKER}.json").write_text(json.dumps({MARKER: kind, "splits": list(built)}) + "\n")
    return out


def export_build(build: str | Path, out: str | Path, fmt: str = "arrow") -> tuple[Path, dict[str, int], list[str]]:
    """A build folder's ``dataset.jsonl`` (+ core-frame images) as an HF folder.

    Returns the folder, rows per split and the problems met (missing frame images)."""
    from .dataset import iter_dataset

    build = Path(build)
    source = build / "dataset.jsonl"
    if not source.is_file():
        raise FormatError(f"{build}: no dataset.jsonl (not a build folder, or the build has not exported yet)")
    problems: list[str] = []
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    for line, record, error in iter_dataset(source):
        if error is not None:
            problems.append(f"{source}:{line}: {error}; line skipped")
            continue
        row = build_record_to_row(record, build, problems)
        splits.setdefault(row["split"], []).append(row)
    if not any(splits.values()) and problems:
        raise FormatError(f"{source}: nothing to export (no valid item; {len(problems)} skipped, the first: {problems[0]})")
    write_folder("build", splits, out, fmt)
    return Path(out), {k: len(v) for k, v in splits.items()}, problems


def export_bench(items: Iterable[BenchItem], out: str | Path, frames_root: str | Path | None, fmt: str = "arrow") -> tuple[Path, int, list[str]]:
    problems: list[str] = []
    root = Path(frames_root) if frames_root is not None else None
    rows = [bench_item_to_row(i, root, problems) for i in items]
    write_folder("bench", {"test": rows}, out, fmt)
    return Path(out), len(rows), problems


def export_train(items: Iterable[TrainItem], out: str | Path, frames_root: str | Path | None, fmt: str = "arrow") -> tuple[Path, int, list[str]]:
    problems: list[str] = []
    root = Path(frames_root) if frames_root is not None else None
    rows = [train_item_to_row(i, root, problems) for i in items]
    write_folder("train", {"train": rows}, out, fmt)
    return Path(out), len(rows), problems


# --------------------------------------------------------------------------- reading


def is_hf_folder(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (
        (path / "dataset_dict.json").is_file() or (path / "state.json").is_file() or (path / f"{MARKER}.json").is_file()
    )


def load_folder(path: str | Path) -> tuple[Kind, "datasets.DatasetDict"]:
    """An HF folder this module wrote: its kind and its splits."""
    ds = _datasets()
    path = Path(path)
    if not is_hf_folder(path):
        raise FormatError(f"{path}: not a Hugging Face datasets folder (no dataset_dict.json, state.json or {MARKER}.json)")
    marker = path / f"{MARKER}.json"
    if marker.is_file():
        meta = json.loads(marker.read_text())
        import pyarrow.parquet as pq

        # read in memory (no datasets cache folder): the files are already Arrow
        features = _features(meta[MARKER])
        loaded = ds.DatasetDict({
            s: _cast(ds.Dataset(pq.read_table(str(path / f"{s}.parquet"))), features) for s in meta["splits"]
        })
        return meta[MARKER], loaded
    loaded = ds.load_from_disk(str(path))
    if isinstance(loaded, ds.Dataset):
        loaded = ds.DatasetDict({"test": loaded})
    kind = _kind_of(loaded, path)
    return kind, loaded


def _kind_of(loaded: "datasets.DatasetDict", path: Path) -> Kind:
    for split in loaded.values():
        try:
            kind = json.loads(split.info.description or "{}").get(MARKER)
        except ValueError:
            kind = None
        if kind in ("build", "bench", "train"):
            return kind
        columns = set(split.column_names)
        if {"qa_frames", "core_frames", "split"} <= columns:
            return "build"
        if {"correct_answer", "options", "core_frames_paths"} <= columns:
            return "bench"
        if {"keyframes", "keyframes_key"} <= columns:
            return "train"
    raise FormatError(f"{path}: a datasets folder, but not one videoespresso wrote (unknown columns)")


def _plain_rows(dataset: "datasets.Dataset") -> Iterable[dict[str, Any]]:
    """Rows without decoding the images (readers of records never need the pixels)."""
    image_columns = [c for c in ("core_images", "keyframe_images") if c in dataset.column_names]
    return dataset.remove_columns(image_columns)


def load_build_records(path: str | Path) -> list[dict[str, Any]]:
    """The ``dataset.jsonl`` records of an exported build, train split first then test, each in
    id order as the build wrote them."""
    kind, loaded = load_folder(path)
    if kind != "build":
        raise FormatError(f"{path}: holds a {kind} export, not a build")
    records = [row_to_build_record(r) for split in loaded.values() for r in _plain_rows(split)]
    return sorted(records, key=lambda r: r["qa"]["id"])


def load_bench_items(path: str | Path) -> list[BenchItem]:
    """Benchmark items from an HF folder: a bench export, or a build export's ``test`` split."""
    kind, loaded = load_folder(path)
    if kind == "bench":
        return [row_to_bench_item(r) for split in loaded.values() for r in _plain_rows(split)]
    if kind == "build":
        if "test" not in loaded:
            raise FormatError(f"{path}: this build export has no test split")
        return [build_row_to_bench_item(r) for r in _plain_rows(loaded["test"])]
    raise FormatError(f"{path}: holds a train export, which has no multiple-choice options")


def load_train_items(path: str | Path) -> list[TrainItem]:
    kind, loaded = load_folder(path)
    if kind != "train":
        raise FormatError(f"{path}: holds a {kind} export, not a train file")
    return [row_to_train_item(r) for split in loaded.values() for r in _plain_rows(split)]
