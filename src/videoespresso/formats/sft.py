"""SFT exports for two training frameworks, from :class:`~videoespresso.schema.SFTExample` records.

* **LLaMA-Factory**, ``sharegpt`` formatting with OpenAI-style tags: one JSON list per target
  (``videoespresso_<target>.json``), each row ``{"messages": [...], "images": [...]}`` (or
  ``"videos"``), a ``"system"`` column when there is a system turn, ``<image>`` / ``<video>``
  placeholders in the first user turn (one per file), plus the ``dataset_info.json`` that
  registers every file (``formatting``, ``columns``, ``tags``), so ``dataset: videoespresso_stage1``
  with ``dataset_dir`` pointing at the folder works;
* **ms-swift**, its standard ``messages`` format: one JSONL file per target
  (``<target>.jsonl``), rows ``{"messages": [...], "images": [...]}`` (or ``"videos"``) with the
  system turn inside ``messages`` and the same placeholders.

:func:`check_llamafactory_row` and :func:`check_swift_row` check a row against the fields and rules
those projects document (roles, alternation, one placeholder per media file, files present).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

from ..schema import SFTExample
from .jsonl import write_json_atomic, write_jsonl_atomic

FORMATS = ("llamafactory", "swift")
IMAGE_TOKEN = "<image>"
VIDEO_TOKEN = "<video>"
LLAMAFACTORY_PREFIX = "videoespresso_"


def _media(example: SFTExample) -> tuple[str, list[str], str]:
    """(column, files, placeholder) of an example: its frames, else its video, else nothing."""
    if example.images:
        return "images", list(example.images), IMAGE_TOKEN
    if example.video and example.meta.get("media") == "video":
        return "videos", [example.video], VIDEO_TOKEN
    return "", [], ""


def _messages(example: SFTExample) -> list[dict[str, str]]:
    column, files, token = _media(example)
    out, placed = [], False
    for message in example.messages:
        content = message.content
        if message.role == "user" and not placed and files:
            # literal placeholders already in the text would be miscounted as media slots
            content = token * len(files) + content.replace(IMAGE_TOKEN, "< image>").replace(VIDEO_TOKEN, "< video>")
            placed = True
        elif IMAGE_TOKEN in content or VIDEO_TOKEN in content:
            content = content.replace(IMAGE_TOKEN, "< image>").replace(VIDEO_TOKEN, "< video>")
        out.append({"role": message.role, "content": content})
    return out


def to_llamafactory_row(example: SFTExample) -> dict[str, Any]:
    messages = _messages(example)
    row: dict[str, Any] = {"messages": [m for m in messages if m["role"] != "system"]}
    system = [m["content"] for m in messages if m["role"] == "system"]
    if system:
        row["system"] = "\n".join(system)
    column, files, _ = _media(example)
    if column:
        row[column] = files
    return row


def to_swift_row(example: SFTExample) -> dict[str, Any]:
    row: dict[str, Any] = {"messages": _messages(example)}
    column, files, _ = _media(example)
    if column:
        row[column] = files
    return row


def llamafactory_dataset_info(files: dict[str, str], columns: dict[str, set[str]]) -> dict[str, Any]:
    """``dataset_info.json`` entries (name -> file, sharegpt, columns, OpenAI-style tags)."""
    info = {}
    for name, file_name in files.items():
        cols = {"messages": "messages"}
        for column in ("system", "images", "videos"):
            if column in columns[name]:
                cols[column] = column
        info[name] = {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": cols,
            "tags": {
                "role_tag": "role", "content_tag": "content", "user_tag": "user",
                "assistant_tag": "assistant", "system_tag": "system",
            },
        }
    return info


def write_sft(examples: Iterable[SFTExample], out: str | Path, formats: Sequence[str] = FORMATS) -> dict[str, dict[str, int]]:
    """Write ``examples`` under ``out/llamafactory/`` and/or ``out/swift/``, one file per target.

    Returns rows written per format and target."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        from ..errors import FormatError

        raise FormatError(f"unknown SFT format {unknown[0]!r}; known: {', '.join(FORMATS)}")
    by_target: dict[str, list[SFTExample]] = {}
    for example in examples:
        by_target.setdefault(example.target, []).append(example)
    out = Path(out)
    counts: dict[str, dict[str, int]] = {}
    if "llamafactory" in formats:
        folder = out / "llamafactory"
        files, columns = {}, {}
        for target, items in sorted(by_target.items()):
            name = f"{LLAMAFACTORY_PREFIX}{target}"
            rows = [to_llamafactory_row(e) for e in items]
            write_json_atomic(folder / f"{name}.json", rows, indent=2)
            files[name] = f"{name}.json"
            columns[name] = {k for row in rows for k in row}
        write_json_atomic(folder / "dataset_info.json", llamafactory_dataset_info(files, columns), indent=2)
        counts["llamafactory"] = {t: len(v) for t, v in by_target.items()}
    if "swift" in formats:
        folder = out / "swift"
        for target, items in sorted(by_target.items()):
            write_jsonl_atomic(folder / f"{target}.jsonl", [to_swift_row(e) for e in items])
        counts["swift"] = {t: len(v) for t, v in by_target.items()}
    return counts


# --------------------------------------------------------------------------- checks


def _check_media(row: dict[str, Any], contents: list[str], problems: list[str], base: Path | None) -> None:
    for column, token in (("images", IMAGE_TOKEN), ("videos", VIDEO_TOKEN)):
        files = row.get(column, [])
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            problems.append(f"{column!r} must be a list of paths")
            continue
        slots = sum(c.count(token) for c in contents)
        if slots != len(files):
            problems.append(f"{slots} {token} placeholders for {len(files)} {column}")
        for f in files:
            path = Path(f) if Path(f).is_absolute() or base is None else base / f
            if not path.is_file():
                problems.append(f"{column[:-1]} file {f!r} not found")


def check_llamafactory_row(row: Any, base: Path | None = None) -> list[str]:
    """Problems of one sharegpt row (OpenAI-style tags) under LLaMA-Factory's documented rules:
    ``messages`` alternate user / assistant starting with the user and end with the assistant
    (the system prompt lives in the ``system`` column), one placeholder per media file."""
    problems: list[str] = []
    if not isinstance(row, dict) or not isinstance(row.get("messages"), list) or not row["messages"]:
        return ["a row must be an object with a non-empty 'messages' list"]
    unknown = set(row) - {"messages", "system", "images", "videos", "tools"}
    if unknown:
        problems.append(f"unknown columns {sorted(unknown)}")
    contents = []
    for i, m in enumerate(row["messages"]):
        if not isinstance(m, dict) or set(m) != {"role", "content"} or not isinstance(m.get("content"), str):
            problems.append(f"message {i}: must be {{'role', 'content'}} with text content")
            continue
        expected = "user" if i % 2 == 0 else "assistant"
        if m["role"] != expected:
            problems.append(f"message {i}: role {m['role']!r}, expected {expected!r}")
        contents.append(m["content"])
    if len(row["messages"]) % 2:
        problems.append("messages must end with an assistant turn")
    if "system" in row and not isinstance(row["system"], str):
        problems.append("'system' must be a string")
    _check_media(row, contents, problems, base)
    return problems


def check_swift_row(row: Any, base: Path | None = None) -> list[str]:
    """Problems of one ms-swift ``messages`` row: roles from system / user / assistant, an optional
    leading system turn, user and assistant alternating, ending with the assistant."""
    problems: list[str] = []
    if not isinstance(row, dict) or not isinstance(row.get("messages"), list) or not row["messages"]:
        return ["a row must be an object with a non-empty 'messages' list"]
    unknown = set(row) - {"messages", "images", "videos", "audios", "tools", "objects"}
    if unknown:
        problems.append(f"unknown columns {sorted(unknown)}")
    messages = row["messages"]
    contents = []
    start = 1 if messages and isinstance(messages[0], dict) and messages[0].get("role") == "system" else 0
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not {"role", "content"} <= set(m) or not isinstance(m.get("content"), str):
            problems.append(f"message {i}: must have 'role' and text 'content'")
            continue
        contents.append(m["content"])
        if i < start:
            continue
        expected = "user" if (i - start) % 2 == 0 else "assistant"
        if m["role"] != expected:
            problems.append(f"message {i}: role {m['role']!r}, expected {expected!r}")
    if messages[-1].get("role") != "assistant":
        problems.append("messages must end with an assistant turn")
    _check_media(row, contents, problems, base)
    return problems
