from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fsspec

from ..errors import FormatError


def load_json_list(path: str | Path, what: str) -> list[Any]:
    """Read a JSON list (or a JSONL file) from a local path or any fsspec URL."""
    try:
        with fsspec.open(str(path), "r", encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise FormatError(f"{what} file {path} does not exist") from None
    except OSError as exc:
        raise FormatError(f"{what} file {path} cannot be read: {exc}") from None
    stripped = text.lstrip()
    if not stripped:
        raise FormatError(f"{what} file {path} is empty")
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FormatError(
                f"{what} file {path} is not valid JSON (line {exc.lineno}: {exc.msg})"
            ) from None
        return data
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise FormatError(f"{what} file {path}, line {number}: not valid JSON ({exc.msg})") from None
    return items


def require_str(raw: dict, key: str, where: str, problems: list[str]) -> str:
    value = raw.get(key)
    if not isinstance(value, str):
        problems.append(
            f"{where}: missing field {key!r}" if key not in raw else f"{where}: field {key!r} must be a string"
        )
        return ""
    return value


def str_list(raw: dict, key: str, where: str, problems: list[str]) -> list[str]:
    value = raw.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{where}: field {key!r} must be a list of strings")
        return []
    return list(value)


def raise_problems(path: str | Path, what: str, problems: list[str], limit: int = 10) -> None:
    if problems:
        shown = "; ".join(problems[:limit])
        more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
        raise FormatError(f"{what} file {path} is malformed: {shown}{more}")
