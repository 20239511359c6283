"""JSON / JSONL helpers: tolerant line reading, durable appends, atomic whole-file writes."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator


def read_jsonl(path: str | Path) -> Iterator[tuple[int, Any | None, str | None]]:
    """Yield ``(line_number, object, None)`` or ``(line_number, None, error)`` per non-empty line.

    A malformed line (for example the half-written last line of a killed run) is reported, not
    raised, so the caller can go on with the rest.
    """
    # Bytes, decoded line by line: one line that is not UTF-8 is that line's problem, not the file's.
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, None, f"line {number}: not UTF-8 text (byte {exc.start + 1})"
                continue
            try:
                yield number, json.loads(line), None
            except json.JSONDecodeError as exc:
                yield number, None, f"line {number}: not valid JSON ({exc.msg})"


def append_jsonl(path: str | Path, obj: Any) -> None:
    """Append one JSON line and make it durable (flush + fsync) before returning."""
    data = json.dumps(obj, ensure_ascii=False) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def default_file_mode() -> int:
    """The mode ``open()`` would give a new file: 0o666 less the process umask.

    ``tempfile.mkstemp`` creates 0600 files; a file renamed into place keeps that mode, so
    atomic writes set this one (the umask can only be read by setting it).
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write text to a temp file in the same folder, then rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, default_file_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, obj: Any, *, indent: int | None = 2) -> None:
    """Write JSON to a temp file in the same folder, then rename: never a half-written file."""
    write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=indent) + "\n")


def write_jsonl_atomic(path: str | Path, objs: Iterable[Any]) -> None:
    write_text_atomic(path, "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs))
