"""A build's ``dataset.jsonl``, read record by record with every field's type checked.

The file is ours, but users edit it (and tools rewrite it). The record's shape is what
:func:`videoespresso.curate.export.to_records` writes, checked with the schema's own models
(strictly: ``"1.5"`` where a number belongs is a mistake in the file, not a number), so a record
with a mistyped field is named with its line and the field's path and the readers go on with the
others, instead of one ``KeyError`` or ``TypeError`` deep in an exporter or a page stopping it.
Two views of one check: :func:`read_dataset` (typed records and the bad lines, for the UI) and
:func:`iter_dataset` (plain dicts or a reason per line, for the exporters and ``stats``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from pydantic import ConfigDict, Field, ValidationError

from ..schema import CoTAnnotation, OptionLetter, QAPair, Record
from .jsonl import read_jsonl


class Judgement(Record):
    judge: str
    keep: bool
    reason: str = ""


class BuildWarning(Record):
    stage: str = ""
    reason: str
    detail: str = ""


class DatasetRecord(Record):
    """One ``dataset.jsonl`` line."""

    # Keys a later version adds are kept by the readers, not refused.
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    qa: QAPair
    cot: CoTAnnotation
    options: list[str] = Field(default_factory=list)
    correct_answer: OptionLetter | None = None
    judgements: list[Judgement] = Field(default_factory=list)
    warnings: list[BuildWarning | str] = Field(default_factory=list)
    provenance: dict[str, Any] = Field(default_factory=dict)
    split: str = ""


@dataclass(frozen=True)
class BadRecord:
    """A line that is not a dataset record: where it is, its id when it has one, and why."""

    line: int | None
    id: str | None
    reason: str


def validation_reason(exc: ValidationError) -> str:
    """The first problem of a validation error, by field path: ``cot.core_frames.0.seconds: ...``."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "record"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _validate(obj: dict[str, Any]) -> DatasetRecord:
    return DatasetRecord.model_validate(obj, strict=True)


def _item_id(obj: Any) -> str | None:
    qa = obj.get("qa") if isinstance(obj, dict) else None
    return qa.get("id") if isinstance(qa, dict) and isinstance(qa.get("id"), str) else None


def parse_record(obj: Any, line: int) -> tuple[DatasetRecord | None, BadRecord | None]:
    if not isinstance(obj, dict):
        return None, BadRecord(line, None, "not a JSON object")
    try:
        return _validate(obj), None
    except ValidationError as exc:
        return None, BadRecord(line, _item_id(obj), validation_reason(exc))


def record_problem(record: Any) -> str | None:
    """Why ``record`` is not a usable ``dataset.jsonl`` record (its first bad field), or None."""
    if not isinstance(record, dict):
        return f"expected a JSON object, not {type(record).__name__}"
    try:
        _validate(record)
    except ValidationError as exc:
        return f"field {validation_reason(exc)}"
    return None


def read_dataset(path: str | Path) -> tuple[list[DatasetRecord], list[BadRecord]]:
    """Every good record of ``path`` in file order, and every bad line with its reason."""
    records: list[DatasetRecord] = []
    bad: list[BadRecord] = []
    for line, obj, error in read_jsonl(path):
        if error is not None:
            bad.append(BadRecord(line, None, error.removeprefix(f"line {line}: ")))
            continue
        record, problem = parse_record(obj, line)
        if record is not None:
            records.append(record)
        else:
            bad.append(problem)
    return records, bad


def iter_dataset(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """``(line, record, None)`` for each valid record of ``path``, ``(line, None, reason)`` for
    the others; the reason names the line, the item when it has an id, and the field."""
    for number, record, error in read_jsonl(path):
        if error is None:
            problem = record_problem(record)
            if problem is not None:
                item_id = _item_id(record)
                item = f" (item {item_id})" if item_id is not None else ""
                error = f"line {number}{item}: {problem}"
        if error is not None:
            yield number, None, error
        else:
            yield number, record, None


__all__ = [
    "BadRecord", "BuildWarning", "DatasetRecord", "Judgement", "iter_dataset", "parse_record", "read_dataset",
    "record_problem", "validation_reason",
]
