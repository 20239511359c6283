"""A build's ``dataset.jsonl``, read record by record with every field's type checked.

The file is ours, but users edit it (and tools rewrite it): a record with a mistyped field is
reported with its line and the field, and the readers go on with the others, instead of one
``KeyError`` or ``TypeError`` deep in an exporter stopping the whole command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..schema import CoTAnnotation, QAPair
from .jsonl import read_jsonl


class BuildRecord(BaseModel):
    """One ``dataset.jsonl`` line (see :func:`videoespresso.curate.export.to_records`)."""

    # Keys a later version adds are kept by the readers, not refused.
    model_config = ConfigDict(extra="allow")

    qa: QAPair
    cot: CoTAnnotation
    options: list[str] = Field(default_factory=list)
    correct_answer: str = ""
    judgements: list[Any] = Field(default_factory=list)
    warnings: list[Any] = Field(default_factory=list)
    provenance: dict[str, Any] = Field(default_factory=dict)
    split: str = "train"


def record_problem(record: Any) -> str | None:
    """Why ``record`` is not a usable ``dataset.jsonl`` record (its first bad field), or None."""
    if not isinstance(record, dict):
        return f"expected a JSON object, not {type(record).__name__}"
    try:
        # strict: "1.5" where a number belongs is a mistake in the file, not a number
        BuildRecord.model_validate(record, strict=True)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        more = exc.error_count() - 1
        return f"field {field}: {err['msg']}" + (f" (and {more} more)" if more else "")
    return None


def read_dataset(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """``(line, record, None)`` for each valid record of ``path``, ``(line, None, reason)`` for
    the others; the reason names the line, the item when it has an id, and the field."""
    for number, record, error in read_jsonl(path):
        if error is None:
            problem = record_problem(record)
            if problem is not None:
                qa = record.get("qa") if isinstance(record, dict) else None
                item_id = qa.get("id") if isinstance(qa, dict) else None
                item = f" (item {item_id})" if isinstance(item_id, str) else ""
                error = f"line {number}{item}: {problem}"
        if error is not None:
            yield number, None, error
        else:
            yield number, record, None


__all__ = ["BuildRecord", "read_dataset", "record_problem"]
