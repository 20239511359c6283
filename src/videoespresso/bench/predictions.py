"""Reading predictions: our JSONL, the official JSON list (items + ``model_output``), and the run
manifest beside a predictions file.

Bad input never stops reading: malformed lines and records without the fields scoring needs are
each reported as a :class:`Problem` and the rest is read; a file that holds no predictions at all
is refused with a guess at what it is.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..errors import ConfigError, FormatError
from ..formats.bench import bench_fingerprint, option_text
from ..formats.bench import item_id as bench_item_id
from ..formats.jsonl import read_jsonl
from ..formats.manifest import read_manifest
from ..schema import LETTERS
from .protocol import describe_settings


class Problem(BaseModel):
    """One thing wrong with the scored input; the item it names was not scored."""

    kind: str
    message: str
    id: str | None = None
    line: int | None = None


@dataclass(slots=True)
class PredictionRecord:
    """The fields scoring needs from one prediction, whatever file format it came from."""

    id: str
    output: Any
    task: str | None = None
    video: str | None = None
    correct: str | None = None
    options: list[str] | None = None
    letter: str | None = None
    rule: str = ""
    line: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: Why the run could not answer this item (an unreadable video, a model error), when it could not.
    error: str | None = None
    #: The ``correct_answer`` value exactly as the file holds it (``"Option (B)"``, ``"[C]"``, 3):
    #: the legacy scorer reads it with score.py's rule, not ours.
    correct_raw: Any = None
    #: Why the record is not a usable prediction ("no 'model_output'", "not an object"); only
    #: read with ``keep_all`` (the legacy scorer counts such elements as wrong, as score.py does).
    defect: str | None = None


_CORRECT_RE = re.compile(r"^\s*\(?\s*([A-D])\s*\)?")
_PLAIN_LETTERS = {letter: letter for letter in LETTERS} | {f"({letter})": letter for letter in LETTERS}


def correct_letter(value: Any) -> str | None:
    """``"(A)"``, ``"A"`` or ``"A: text"`` -> ``"A"``; anything else -> None."""
    if not isinstance(value, str):
        return None
    if value in _PLAIN_LETTERS:
        return _PLAIN_LETTERS[value]
    match = _CORRECT_RE.match(value)
    return match.group(1) if match else None


def _option_list(options: Any) -> list[str] | None:
    if not isinstance(options, list) or len(options) != 4 or not all(isinstance(o, str) for o in options):
        return None
    return list(options)


def _clean_options(options: Any) -> list[str] | None:
    """Official-format ``"(A): text"`` options -> their texts."""
    listed = _option_list(options)
    return None if listed is None else [option_text(o) for o in listed]


def read_predictions(path: str | Path, *, keep_all: bool = False) -> tuple[list[PredictionRecord], list[Problem]]:
    """Read our predictions JSONL or an official-format JSON list (items + ``model_output``).

    With ``keep_all`` every element becomes a record, also those without an output or that are
    not objects (their ``defect`` says why): the legacy scorer counts them, as score.py does.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"predictions file {path} does not exist")
    with path.open("rb") as handle:
        head = handle.read(4096).lstrip()
    if head.startswith(b"["):
        return _read_official(path, keep_all)
    return _read_jsonl(path, keep_all)


def _what_it_is(path: Path) -> str:
    """A guess at what a file that holds no predictions is, for the error message."""
    try:
        whole = json.loads(path.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError):
        whole = None
    if isinstance(whole, dict):
        if whole.get("format") == "videoespresso.selections" or "selections" in whole:
            return "it is a selections file (from `videoespresso select`), not predictions"
        if "score" in whole and "per_task" in json.dumps(whole.get("score"))[:100000]:
            return "it is a score file (from `videoespresso score --json`), not predictions"
        if str(whole.get("format", "")).endswith("run-manifest"):
            return "it is a run manifest, not predictions"
        if "judge" in whole and "means" in whole:
            return "it is a judge summary (from `videoespresso judge --json`), not predictions"
    for _, obj, error in read_jsonl(path):
        if error is None and isinstance(obj, dict):
            if "scores" in obj and "judge" in obj:
                return "it is a judge output (from `videoespresso judge`), not predictions"
            if "frames" in obj and "selector" in obj:
                return "it holds frame selections, not predictions"
            return f"its records have no 'output' field (keys: {', '.join(sorted(obj)[:8])})"
    if isinstance(whole, dict):
        return "it is one JSON object, not a predictions JSONL or an official-format list"
    return "no line is a JSON object" if path.stat().st_size else "the file is empty"


def _read_official(path: Path, keep_all: bool = False) -> tuple[list[PredictionRecord], list[Problem]]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"predictions file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise FormatError(f"predictions file {path}: expected a JSON list of items")
    records: list[PredictionRecord] = []
    problems: list[Problem] = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            if keep_all:
                records.append(PredictionRecord(id=str(index), output=None, line=index, defect="not an object"))
            else:
                problems.append(Problem(kind="invalid_record", id=str(index), message=f"item {index} is not an object"))
            continue
        item_id = bench_item_id(item.get("id", index))
        if item_id is None:
            message = f"item {index}: bad id {item['id']!r} (expected a non-empty string or an integer)"
            if not keep_all:
                problems.append(Problem(kind="missing_id", line=index, message=message))
                continue
            # score.py counts the element whatever its id.
            item_id = f"#{index}"
            problems.append(Problem(kind="legacy_bad_id", id=item_id, line=index, message=f"{message}; counted as score.py does"))
        if "model_output" not in item and not keep_all:
            problems.append(
                Problem(kind="invalid_record", id=item_id, message=f"item {item_id} has no 'model_output'")
            )
            continue
        records.append(
            PredictionRecord(
                id=item_id,
                output=item.get("model_output"),
                task=item.get("task") if isinstance(item.get("task"), str) else None,
                video=item.get("video_path") if isinstance(item.get("video_path"), str) else None,
                correct=correct_letter(item.get("correct_answer")),
                options=_clean_options(item.get("options")),
                line=index,
                extra={k: item[k] for k in ("question", "answer", "evidence") if isinstance(item.get(k), str)},
                correct_raw=item.get("correct_answer"),
                defect=None if "model_output" in item else "no 'model_output'",
            )
        )
    if not records or (keep_all and all(r.defect for r in records)):
        what = "a benchmark file without 'model_output'" if data else "an empty list"
        raise FormatError(f"{path} holds no predictions: it is {what}")
    return records, problems


def _read_jsonl(path: Path, keep_all: bool = False) -> tuple[list[PredictionRecord], list[Problem]]:
    records: list[PredictionRecord] = []
    problems: list[Problem] = []
    option_memo: dict[tuple[Any, ...], list[str]] = {}
    for line_no, obj, error in read_jsonl(path):
        if error is not None or not isinstance(obj, dict):
            problems.append(
                Problem(kind="malformed_json", line=line_no, message=f"line {line_no}: {error or 'not a JSON object'}")
            )
            continue
        item_id = bench_item_id(obj.get("id"))
        if item_id is None:
            reason = f"bad id {obj['id']!r} (expected a non-empty string or an integer)" if "id" in obj else "no 'id'"
            problems.append(Problem(kind="missing_id", line=line_no, message=f"line {line_no}: {reason}"))
            continue
        if "output" not in obj and not keep_all:
            problems.append(
                Problem(kind="invalid_record", id=item_id, line=line_no, message=f"line {line_no}: item {item_id} has no 'output'")
            )
            continue
        extra = obj.get("extra")
        if not isinstance(extra, dict):
            extra = {}
        task, video, letter, rule = obj.get("task"), obj.get("video_path"), obj.get("letter"), obj.get("rule")
        raw_options = extra.get("options")
        if raw_options is not None:
            # Every line of a run repeats its item's options; validate each distinct list once.
            key = tuple(raw_options) if isinstance(raw_options, list) else None
            options = option_memo.get(key) if key is not None else None
            if options is None:
                options = _option_list(raw_options)
                if key is not None and options is not None:
                    option_memo[key] = options
        else:
            options = None
        records.append(
            PredictionRecord(
                id=item_id,
                output=obj.get("output"),
                task=task if isinstance(task, str) else None,
                video=video if isinstance(video, str) else None,
                correct=correct_letter(obj.get("correct_answer")),
                options=options,
                letter=letter if letter in LETTERS else None,
                rule=rule if isinstance(rule, str) else "",
                line=line_no,
                error=str(obj["error"]) if obj.get("error") else None,
                correct_raw=obj.get("correct_answer"),
                defect=None if "output" in obj else "no 'output'",
            )
        )
    if not records or (keep_all and all(r.defect for r in records)):
        raise FormatError(f"{path} holds no predictions: {_what_it_is(path)}")
    return records, problems


def run_bench_sha256(predictions: str | Path) -> str | None:
    """The benchmark fingerprint recorded in the eval manifest beside a predictions file (None
    when there is no readable eval manifest)."""
    try:
        manifest = read_manifest(predictions)
    except ConfigError:
        return None
    if manifest is None or manifest.get("kind") != "eval":
        return None
    sha = manifest["settings"].get("bench_sha256")
    return sha if isinstance(sha, str) else None


def check_bench_matches(predictions: str | Path, bench_path: str | Path) -> None:
    """Refuse to score a run against another benchmark file than the one it was run on."""
    recorded = run_bench_sha256(predictions)
    if recorded is not None and recorded != (actual := bench_fingerprint(bench_path)):
        raise FormatError(
            f"{predictions} was run on another benchmark file (SHA-256 {recorded[:12]}... in its run manifest) "
            f"than {bench_path} ({actual[:12]}...); score it with the benchmark it was run on"
        )



def run_protocols(predictions: str | Path) -> list[str]:
    """How the run behind a predictions file was produced, from its run manifest (one line)."""
    try:
        manifest = read_manifest(predictions)
    except ConfigError:  # a broken manifest is eval's concern; scoring does not need it
        return []
    if manifest is None or manifest.get("kind") != "eval":
        return []
    return [describe_settings(manifest["settings"])]
