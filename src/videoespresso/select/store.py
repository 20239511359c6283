"""Selections on disk: one JSON object keyed by question id, so the benchmark and other
frameworks can reuse a selector's choices without running it again.

File shape (``version`` lets the format evolve)::

    {"format": "videoespresso.selections", "version": 1,
     "selections": {"<question id>": {<Selection fields>}, ...},
     "failures": {"<question id>": "<reason>", ...}}

``failures`` (optional) records questions a batch run could not select frames for.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

from pydantic import ValidationError

from ..errors import FormatError
from ..formats.jsonl import write_text_atomic
from ..schema import Selection

FORMAT = "videoespresso.selections"
VERSION = 1


def save_selections(
    path: "str | os.PathLike[str]",
    selections: Mapping[str, Selection],
    failures: Mapping[str, str] | None = None,
) -> Path:
    """Write ``selections`` (question id -> Selection) atomically: temp file, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body: dict[str, object] = {
        "format": FORMAT,
        "version": VERSION,
        "selections": {str(k): v.model_dump(mode="json") for k, v in selections.items()},
    }
    if failures:
        body["failures"] = {str(k): str(v) for k, v in failures.items()}
    write_text_atomic(path, json.dumps(body, indent=1, ensure_ascii=False))
    return path


def load_selections(path: "str | os.PathLike[str]") -> dict[str, Selection]:
    """Read a selections file; a plain ``{id: selection}`` object is accepted too."""
    return read_selections_file(path)[0]


def read_selections_file(path: "str | os.PathLike[str]") -> tuple[dict[str, Selection], dict[str, str]]:
    """A selections file's selections and its recorded failures (question id -> reason)."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"selections file {path} does not exist")
    try:
        data = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"selections file {path} is not valid JSON: {exc}") from None
    failures: dict[str, str] = {}
    if isinstance(data, dict) and data.get("format") == FORMAT:
        if data.get("version") != VERSION:
            raise FormatError(
                f"selections file {path}: unsupported version {data.get('version')!r} "
                f"(this videoespresso reads version {VERSION})"
            )
        raw_failures = data.get("failures") or {}
        if isinstance(raw_failures, dict):
            failures = {str(k): str(v) for k, v in raw_failures.items()}
        data = data.get("selections")
    if not isinstance(data, dict):
        raise FormatError(f"selections file {path}: expected an object keyed by question id")
    out: dict[str, Selection] = {}
    problems: list[str] = []
    for key, raw in data.items():
        try:
            out[key] = Selection.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            problems.append(f"question {key!r}: {where}: {first['msg']}")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise FormatError(f"selections file {path}: " + "; ".join(problems[:3]) + more)
    return out, failures
