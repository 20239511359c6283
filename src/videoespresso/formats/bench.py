"""The official test file ``bench_hard.json`` (a JSON list), read and written losslessly.

Each item has ``video_path``, ``question``, ``options`` (four strings ``"(A): ..."``),
``correct_answer`` (``"(A)"``), ``answer``, ``evidence``, ``task``, ``core_frames_paths``,
``core_frames_captions`` and possibly more; unknown fields are kept in ``BenchItem.extra`` and
written back. An item's id is its ``id`` field when it has one, else its index in the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

from ..errors import FormatError
from ..schema import LETTERS, BenchItem
from ._io import load_json_list, raise_problems, require_str, str_list
from .jsonl import write_json_atomic

KNOWN_FIELDS = (
    "video_path", "question", "options", "correct_answer", "answer", "evidence", "task",
    "core_frames_paths", "core_frames_captions",
)
_OPTION_RE = re.compile(r"^\s*\(?\s*([A-Da-d])\s*\)?\s*[:.]\s*(.*)$", re.DOTALL)
_ANSWER_RE = re.compile(r"^\s*\(?\s*([A-Da-d])\s*\)?\s*$")


def option_text(raw: str) -> str:
    """The text of an option: the part after ``"):"``, stripped, as the official script does."""
    if "):" in raw:
        return raw.split("):", 1)[1].strip()
    match = _OPTION_RE.match(raw)
    return match.group(2).strip() if match else raw.strip()


def item_id(value: Any) -> str | None:
    """An item id as text: a non-empty string or an integer; None for anything else (null, a
    list, a bool, a float), which ``str`` would turn into "None" or "[1, 2]"."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        return None
    return str(value)


def parse_bench_item(raw: Any, index: int, where: str, problems: list[str]) -> BenchItem | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: not a JSON object")
        return None
    start = len(problems)
    if "id" in raw and item_id(raw["id"]) is None:
        problems.append(f"{where}: bad id {raw['id']!r} (expected a non-empty string or an integer)")
    fields = {k: require_str(raw, k, where, problems) for k in ("video_path", "question", "task")}
    options = raw.get("options")
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        problems.append(f"{where}: field 'options' must be a list of 4 strings")
        options = []
    elif len(options) != 4:
        problems.append(f"{where}: expected 4 options, got {len(options)}")
    answer = raw.get("correct_answer")
    match = _ANSWER_RE.match(answer) if isinstance(answer, str) else None
    if match is None:
        problems.append(
            f"{where}: bad correct_answer {answer!r} (expected one of (A), (B), (C), (D))"
        )
    optional = {
        "answer": raw.get("answer", ""),
        "evidence": raw.get("evidence", ""),
    }
    for key, value in optional.items():
        if not isinstance(value, str):
            problems.append(f"{where}: field {key!r} must be a string")
    paths = str_list(raw, "core_frames_paths", where, problems)
    captions = str_list(raw, "core_frames_captions", where, problems)
    if len(problems) > start:
        return None
    return BenchItem(
        id=item_id(raw.get("id", index)) or str(index),
        video_path=fields["video_path"],
        question=fields["question"],
        task=fields["task"],
        options=[option_text(o) for o in options],
        raw_options=list(options),
        correct_answer=match.group(1).upper(),
        answer=optional["answer"],
        evidence=optional["evidence"],
        core_frames_paths=paths,
        core_frames_captions=captions,
        extra={k: v for k, v in raw.items() if k not in KNOWN_FIELDS},
    )


def read_bench(path: str | Path) -> list[BenchItem]:
    """Read a benchmark file; a malformed one raises FormatError naming each bad item.

    A Hugging Face ``datasets`` folder written by :mod:`videoespresso.formats.hf` (a benchmark
    export, or a build export's test split) is read too."""
    items, problems = read_bench_items(path)
    raise_problems(path, "benchmark", problems)
    if not items:
        # Nothing to run or score against: every command would report an empty success.
        raise FormatError(f"benchmark {path} holds no items")
    return items


def read_bench_items(path: str | Path) -> tuple[list[BenchItem], list[str]]:
    """The good items of a benchmark file and one line per bad one (for readers that show the
    rest, such as the UI); a file that is not a list of items at all still raises FormatError."""
    if Path(path).is_dir():
        from .hf import load_bench_items

        return load_bench_items(path), []
    data = load_json_list(path, "benchmark")
    if not isinstance(data, list):
        raise_problems(path, "benchmark", ["the top level must be a JSON list of items"])
    problems: list[str] = []
    items = []
    for index, raw in enumerate(data):
        where = f"item {index}"
        if isinstance(raw, dict) and "question" in raw and isinstance(raw["question"], str):
            where += f" ({raw['question'][:40]!r})"
        item = parse_bench_item(raw, index, where, problems)
        if item is not None:
            items.append(item)
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.id in seen:
            problems.append(f"item {index}: duplicate id {item.id!r}")
        seen[item.id] = index
    return items, problems


def bench_item_to_official(item: BenchItem) -> dict[str, Any]:
    """The item in the official shape (raw option strings kept when they match the texts)."""
    if len(item.raw_options) == 4 and [option_text(o) for o in item.raw_options] == item.options:
        options = list(item.raw_options)
    else:
        options = [f"({letter}): {text}" for letter, text in zip(LETTERS, item.options)]
    out: dict[str, Any] = {
        "video_path": item.video_path,
        "question": item.question,
        "options": options,
        "correct_answer": f"({item.correct_answer})",
        "answer": item.answer,
        "evidence": item.evidence,
        "task": item.task,
        "core_frames_paths": list(item.core_frames_paths),
        "core_frames_captions": list(item.core_frames_captions),
    }
    extra = dict(item.extra)
    if "id" in extra or (item.id and not item.id.isdigit()):
        extra.setdefault("id", item.id)
    out.update(extra)
    return out


def bench_fingerprint(path: str | Path) -> str:
    """SHA-256 of a benchmark file, or of a folder's files (names and contents) for an HF folder."""
    import hashlib

    from .manifest import file_sha256

    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode("utf-8") + b"\0")
        digest.update(file_sha256(file).encode("ascii"))
    return digest.hexdigest()


def write_bench(items: Iterable[BenchItem], path: str | Path) -> None:
    write_json_atomic(path, [bench_item_to_official(i) for i in items], indent=2)
