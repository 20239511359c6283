"""Reading a build's ``dataset.jsonl`` record by record: a bad record is named, the rest are read.

The record's shape is what :func:`videoespresso.curate.export.to_records` writes, checked with the
schema's own models, so a value of the wrong type (a string where a number belongs) is caught
here, with the field's path, before any reader formats or compares it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from ..schema import CoTAnnotation, OptionLetter, QAPair, Record


class Judgement(Record):
    judge: str
    keep: bool
    reason: str = ""


class BuildWarning(Record):
    stage: str = ""
    reason: str
    detail: str = ""


class DatasetRecord(Record):
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

    line: int
    id: str | None
    reason: str


def validation_reason(exc: ValidationError) -> str:
    """The first problem of a validation error, by field path: ``cot.core_frames.0.seconds: ...``."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "record"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def parse_record(obj: Any, line: int) -> tuple[DatasetRecord | None, BadRecord | None]:
    if not isinstance(obj, dict):
        return None, BadRecord(line, None, "not a JSON object")
    qa = obj.get("qa")
    item_id = qa.get("id") if isinstance(qa, dict) and isinstance(qa.get("id"), str) else None
    try:
        return DatasetRecord.model_validate(obj), None
    except ValidationError as exc:
        return None, BadRecord(line, item_id, validation_reason(exc))


def read_dataset(path: str | Path) -> tuple[list[DatasetRecord], list[BadRecord]]:
    """Every good record of ``path`` in file order, and every bad line with its reason."""
    from .jsonl import read_jsonl

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


__all__ = ["BadRecord", "BuildWarning", "DatasetRecord", "Judgement", "parse_record", "read_dataset", "validation_reason"]
