"""Close-ended scoring: per-task accuracy, both published averages, unparsed rates, clustered errors.

* ``overall_weighted`` is the leaderboard's "Overall": correct answers over all scored questions.
* ``overall_unweighted`` is the paper's "Avg.": the mean of the per-task accuracies.

Accuracies and standard errors are in percent. Standard errors are clustered by video (several
questions share a video, so they are not independent): for an estimator ``sum_i w_i x_i`` with
residuals ``r_i`` around the (task) mean, ``var = G/(G-1) * sum_g (sum_{i in g} w_i r_i)^2`` over
the ``G`` videos; 95% intervals are ``acc +- 1.96 se``.

Bad input never stops scoring: malformed lines, records without the fields scoring needs,
duplicate ids (the first is kept), ids the benchmark does not have, and benchmark questions
without a prediction are each reported as a :class:`Problem`; the rest is scored.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal, Sequence

import numpy as np
from pydantic import BaseModel, Field

from ..errors import ConfigError, FormatError
from ..formats.bench import item_id as bench_item_id
from ..schema import LETTERS, TASKS, BenchItem, Score, TaskScore, closest_task, find_task
from .extract import Extraction, Mode, extract_answer, legacy_extract

if TYPE_CHECKING:
    from ..models.protocols import ChatModel, TextEmbedder

_Z95 = 1.959964
INTERVAL_METHOD = ("Wilson score interval on the video-clustered effective sample size; for Avg. (unweighted), on the "
                   "effective size of the mean of task accuracies (each task's own clustered variance)")
FailedRule = Literal["wrong", "exclude"]


class Problem(BaseModel):
    """One thing wrong with the scored input; the item it names was not scored."""

    kind: str
    message: str
    id: str | None = None
    line: int | None = None


class ScoreReport(BaseModel):
    """What ``videoespresso score --json`` writes: the score plus how it was obtained."""

    name: str = ""
    source: str | None = None
    mode: str = "default"
    score: Score
    problems: list[Problem] = Field(default_factory=list)
    problem_counts: dict[str, int] = Field(default_factory=dict)
    #: A few replies no rule could read (id, task, rule, output truncated).
    unparsed_examples: list[dict[str, Any]] = Field(default_factory=list)
    #: Items the run could not answer (id, task, reason): neither unparsed nor a wrong answer.
    failures: list[dict[str, Any]] = Field(default_factory=list)
    #: How failed items entered the accuracies: "wrong" (counted as wrong) or "excluded".
    failed_rule: str = "wrong"
    #: Whether every benchmark task is present (a run missing tasks is not comparable with the
    #: leaderboard's 14-task figures).
    complete: bool = True
    #: How the scored run was produced (from its run manifest): one line per run, e.g.
    #: "official: frames official (per-video count), input video, ...". Empty when unknown.
    protocols: list[str] = Field(default_factory=list)


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


# --------------------------------------------------------------------------- reading

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
    from ..formats.bench import option_text

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
    from ..formats.jsonl import read_jsonl

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
    from ..formats.jsonl import read_jsonl

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


# --------------------------------------------------------------------------- scoring


@lru_cache(maxsize=1024)
def task_key(name: str) -> str:
    """The canonical (paper) name of a known task; unknown task names are kept as they are."""
    info = find_task(name)
    return info.paper_name if info else name


def check_task_names(tasks: Iterable[tuple[str, str | None]], source: str) -> None:
    """Refuse task names that are none of the 14 benchmark tasks.

    ``tasks`` yields ``(task, item id or None)``. A name matches after case, whitespace and
    separators are ignored (paper and leaderboard names both count). Raises one ConfigError
    naming each unknown name, how many items carry it, the first of them and the closest valid
    name; callers skip this check for a custom benchmark (``tasks_any``).
    """
    valid: dict[str, bool] = {}  # a run repeats a few names over many items: look each up once
    unknown: dict[str, list[Any]] = {}
    for name, item_id in tasks:
        ok = valid.get(name)
        if ok is None:
            ok = valid[name] = name == NO_TASK or find_task(name) is not None
        if not ok:
            entry = unknown.setdefault(name, [0, item_id])
            entry[0] += 1
    if not unknown:
        return
    parts = []
    for name, (count, first) in unknown.items():
        items = f"{count} item{'s' if count != 1 else ''}" + (f", the first item {first}" if first is not None else "")
        hint = closest_task(name)
        parts.append(f"task {name!r} ({items}) is not a VideoEspresso task"
                     + (f" (did you mean {hint!r}?)" if hint else ""))
    more = f" and {len(parts) - 5} more" if len(parts) > 5 else ""
    raise ConfigError(f"{source}: {'; '.join(parts[:5])}{more}; pass --tasks-any for a custom benchmark")


def custom_tasks(report: ScoreReport) -> list[str]:
    """The scored tasks that are none of the 14 (present only when scored with ``tasks_any``)."""
    return [t.task for t in report.score.per_task if t.task != NO_TASK and find_task(t.task) is None]


def _task_order(keys: Iterable[str]) -> list[str]:
    known = [t.paper_name for t in TASKS]
    present = set(keys)
    return [k for k in known if k in present] + sorted(present - set(known))


def _rule_family(rule: str) -> str:
    # "none:ambiguous:AB" is counted with every other ambiguous reply.
    parts = rule.split(":")
    return ":".join(parts[:2]) if parts[0] == "none" else parts[0]


def score_records(
    records: Sequence[PredictionRecord],
    bench: Sequence[BenchItem] | None = None,
    *,
    mode: Mode = "default",
    failed: FailedRule = "wrong",
    embedder: "TextEmbedder | None" = None,
    judge: "ChatModel | None" = None,
    embedding_margin: float = 0.0,
    problems: Sequence[Problem] = (),
    partial: bool = False,
    name: str = "",
    source: str | None = None,
    max_examples: int = 20,
    outcomes: dict[str, tuple[str, str, bool]] | None = None,
    tasks_any: bool = False,
) -> ScoreReport:
    """Score predictions, taking task, answer, options and video from ``bench`` when given.

    A task name that is none of the 14 benchmark tasks is refused (:func:`check_task_names`)
    unless ``tasks_any`` says the benchmark is a custom one.

    ``partial`` says the run covered part of the benchmark on purpose (``eval --limit`` or
    ``--task``): benchmark items without a prediction are then not reported as missing.

    Items the run could not answer (a prediction with an ``error``) are failures, listed in
    ``failures`` with their reasons and never counted as unparsed replies; ``failed`` says
    whether they count as wrong answers (``"wrong"``, the default: a failure never raises an
    accuracy) or are left out of the accuracies (``"exclude"``). The legacy mode counts them as
    wrong, as the official scorer does with an empty output.

    ``outcomes``, when given, is filled with ``id -> (task, video, correct)`` for every scored
    item (what a paired comparison of two runs needs).
    """
    if mode == "legacy":
        return score_legacy(records, bench, problems=problems, partial=partial, name=name, source=source,
                            max_examples=max_examples, outcomes=outcomes, tasks_any=tasks_any)
    found = list(problems)
    by_id = {item.id: item for item in bench} if bench is not None else None
    seen: set[str] = set()
    memo: dict[tuple[Any, ...], Extraction] = {}

    ids: list[str] = []
    tasks: list[str] = []
    videos: list[str] = []
    correct: list[bool] = []
    parsed: list[bool] = []
    failed_flags: list[bool] = []
    rules: Counter[str] = Counter()
    examples: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    failed_rule = "wrong" if mode == "legacy" else failed

    for rec in records:
        if rec.id in seen:
            found.append(
                Problem(kind="duplicate_id", id=rec.id, line=rec.line, message=f"item {rec.id}: duplicate prediction (the first was kept)")
            )
            continue
        seen.add(rec.id)
        task, truth, options, video = rec.task, rec.correct, rec.options, rec.video
        if by_id is not None:
            item = by_id.get(rec.id)
            if item is None:
                found.append(
                    Problem(kind="unknown_id", id=rec.id, line=rec.line, message=f"item {rec.id}: not in the benchmark")
                )
                continue
            task, truth, options, video = item.task, item.correct_answer, item.options, item.video_path
        if rec.defect is not None:
            found.append(Problem(kind="invalid_record", id=rec.id, line=rec.line, message=f"item {rec.id}: {rec.defect}"))
            continue
        if not task or truth is None:
            if task and rec.correct_raw is not None:
                # Our scoring reads "(A)", "A" and "A: text" only; score.py would read the first
                # capital A-D of "Option (B)" or "[C]" (see --legacy).
                message = f"item {rec.id}: correct_answer {str(rec.correct_raw)[:40]!r} is not a letter we read (pass the benchmark file)"
                kind = "unreadable_answer"
            else:
                missing = "task" if not task else "correct_answer"
                message = f"item {rec.id}: no {missing} (pass the benchmark file)"
                kind = "invalid_record"
            found.append(Problem(kind=kind, id=rec.id, line=rec.line, message=message))
            continue

        if rec.error is not None:
            failures.append({"id": rec.id, "task": task, "reason": rec.error})
            if failed_rule == "exclude":
                continue
            ids.append(rec.id)
            tasks.append(task_key(task))
            videos.append(video or f"item:{rec.id}")
            correct.append(False)
            parsed.append(True)
            failed_flags.append(True)
            rules["failed"] += 1
            continue

        if rec.rule == "logprob" and rec.letter is not None:
            result = Extraction(rec.letter, "logprob")
        else:
            # A non-string output (a list, a number) is keyed by its type and repr: lists are unhashable.
            output_key = rec.output if isinstance(rec.output, str) or rec.output is None else (type(rec.output).__name__, repr(rec.output))
            key = (output_key, tuple(options) if options else None)
            result = memo.get(key)  # type: ignore[arg-type]
            if result is None:
                result = extract_answer(
                    rec.output, options, embedder=embedder, embedding_margin=embedding_margin, judge=judge
                )
                memo[key] = result

        ids.append(rec.id)
        tasks.append(task_key(task))
        videos.append(video or f"item:{rec.id}")
        correct.append(result.letter is not None and result.letter == truth)
        parsed.append(result.letter is not None)
        failed_flags.append(False)
        rules[_rule_family(result.rule)] += 1
        if result.letter is None and len(examples) < max_examples:
            text = rec.output if isinstance(rec.output, str) else repr(rec.output)
            examples.append({"id": rec.id, "task": task, "rule": result.rule, "output": text[:500]})

    if by_id is not None and not partial:
        # An item whose record was reported as invalid is not reported a second time as missing.
        reported = seen | {p.id for p in found if p.id is not None}
        for item_id in by_id:
            if item_id not in reported:
                found.append(Problem(kind="missing_prediction", id=item_id, message=f"item {item_id}: no prediction"))

    if not tasks_any:
        # Failed items are in ``tasks`` unless they were left out of the accuracies.
        left_out = ((f["task"], f["id"]) for f in failures) if failed_rule == "exclude" else ()
        check_task_names(itertools.chain(zip(tasks, ids), left_out), source or "predictions")
    if outcomes is not None:
        outcomes.update(zip(ids, zip(tasks, videos, correct)))
    score = compute_score(
        tasks, videos, np.asarray(correct, dtype=bool), np.asarray(parsed, dtype=bool), rules,
        failed=np.asarray(failed_flags, dtype=bool),
    )
    if failed_rule == "exclude":
        score = score.model_copy(update={"failed": len(failures)})
    present = {t.task for t in score.per_task}
    return ScoreReport(
        name=name,
        source=source,
        mode=mode,
        score=score,
        problems=found,
        problem_counts=dict(Counter(p.kind for p in found)),
        unparsed_examples=examples,
        failures=failures,
        failed_rule=failed_rule,
        complete=all(t.paper_name in present for t in TASKS),
    )


#: The task bucket of elements that name none (score.py counts them in its one accuracy).
NO_TASK = "(no task)"


def score_legacy(
    records: Sequence[PredictionRecord],
    bench: Sequence[BenchItem] | None = None,
    *,
    problems: Sequence[Problem] = (),
    partial: bool = False,
    name: str = "",
    source: str | None = None,
    max_examples: int = 20,
    outcomes: dict[str, tuple[str, str, bool]] | None = None,
    tasks_any: bool = False,
) -> ScoreReport:
    """Exactly what the official ``score.py`` counts: every element, right or wrong.

    score.py divides by ``len(data)`` and counts an element right when the first capital A-D of
    its ``model_output`` equals the first capital A-D of its ``correct_answer``. So elements
    without an output, with a non-string output, with a truth only that rule can read
    (``"Option (B)"``, ``"[C]"``) or with none at all, and repeated ids all count, each once per
    appearance. Read the file with ``read_predictions(path, keep_all=True)`` to keep the elements
    without an output. A failed item (its output is empty) is wrong.

    Where the truth is missing from an element and ``bench`` has its id, the benchmark's letter
    is used (our JSONL lines always carry it). Differences from our own scoring are listed as
    problems of kind ``legacy_*`` (counted, unlike the default mode's problems); an element that
    is not an object, where score.py itself would stop with an error, is counted wrong.
    """
    found = list(problems)
    by_id = {item.id: item for item in bench} if bench is not None else None
    seen: Counter[str] = Counter()
    tasks: list[str] = []
    videos: list[str] = []
    correct: list[bool] = []
    parsed: list[bool] = []
    failed_flags: list[bool] = []
    ids: list[str] = []
    rules: Counter[str] = Counter()
    examples: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []

    for rec in records:
        item = by_id.get(rec.id) if by_id is not None else None
        truth_raw = rec.correct_raw if rec.correct_raw is not None else rec.correct
        if truth_raw is None and item is not None:
            truth_raw = f"({item.correct_answer})"
        task = rec.task or (item.task if item is not None else None)
        output = rec.output
        if rec.error is not None:
            failures.append({"id": rec.id, "task": task, "reason": rec.error})
        seen[rec.id] += 1
        where = f"item {rec.id}" + (f" (line {rec.line})" if rec.line is not None else "")
        if seen[rec.id] == 2:
            found.append(Problem(kind="legacy_repeated_id", id=rec.id, line=rec.line,
                                 message=f"{where}: repeated id, counted again as score.py does"))
        if rec.defect is not None:
            found.append(Problem(kind="legacy_no_output", id=rec.id, line=rec.line,
                                 message=f"{where}: {rec.defect}, counted as wrong as score.py does"))
        elif output is not None and not isinstance(output, str):
            found.append(Problem(kind="legacy_non_string_output", id=rec.id, line=rec.line,
                                 message=f"{where}: the output is {type(output).__name__}, counted as wrong as score.py does"))
        truth = legacy_extract(truth_raw)
        if rec.defect == "not an object":
            pass
        elif truth is None:
            found.append(Problem(kind="legacy_no_truth", id=rec.id, line=rec.line,
                                 message=f"{where}: no capital A-D in correct_answer {truth_raw!r}; counted as wrong as score.py does"))
        elif truth_raw is not None and correct_letter(truth_raw) is None:
            found.append(Problem(kind="legacy_loose_truth", id=rec.id, line=rec.line,
                                 message=f"{where}: correct_answer {str(truth_raw)[:40]!r} read as {truth} by score.py's rule only"))
        letter = legacy_extract(output)
        key = task_key(task) if task else NO_TASK
        ids.append(rec.id)
        tasks.append(key)
        videos.append(rec.video or (item.video_path if item is not None else None) or f"item:{rec.id}:{rec.line}")
        correct.append(letter is not None and letter == truth)
        parsed.append(letter is not None or rec.error is not None)
        failed_flags.append(rec.error is not None)
        rules["failed" if rec.error is not None else ("legacy" if letter else "none:legacy")] += 1
        if letter is None and rec.error is None and len(examples) < max_examples:
            text = output if isinstance(output, str) else repr(output)
            examples.append({"id": rec.id, "task": task, "rule": "none:legacy", "output": text[:500]})

    if by_id is not None and not partial:
        for item_id in by_id:
            if item_id not in seen:
                found.append(Problem(kind="missing_prediction", id=item_id,
                                     message=f"item {item_id}: no prediction (score.py would not know it; not counted)"))
    if not tasks_any:
        check_task_names(zip(tasks, ids), source or "predictions")
    if outcomes is not None:
        outcomes.update(zip(ids, zip(tasks, videos, correct)))
    score = compute_score(tasks, videos, np.asarray(correct, dtype=bool), np.asarray(parsed, dtype=bool), rules,
                          failed=np.asarray(failed_flags, dtype=bool))
    present = {t.task for t in score.per_task}
    return ScoreReport(
        name=name,
        source=source,
        mode="legacy",
        score=score,
        problems=found,
        problem_counts=dict(Counter(p.kind for p in found)),
        unparsed_examples=examples,
        failures=failures,
        failed_rule="wrong",
        complete=all(t.paper_name in present for t in TASKS),
    )


def compute_score(
    tasks: Sequence[str],
    videos: Sequence[str],
    correct: np.ndarray,
    parsed: np.ndarray,
    rule_counts: dict[str, int] | None = None,
    *,
    failed: np.ndarray | None = None,
) -> Score:
    """Per-task and overall accuracy (percent) with video-clustered standard errors.

    95% intervals are Wilson score intervals on an effective sample size ``n / deff``, where the
    design effect ``deff = max(1, se_clustered^2 / se_iid^2)`` accounts for questions sharing a
    video; unlike ``acc +- 1.96 se`` they never collapse to a point at 0% or 100% or with one
    video.

    The unweighted mean ``U = mean_t p_t`` gets the same kind of interval, on the design-based
    effective sample size ``n* = U (1 - U) / V``: ``V`` is the larger of ``sum_t V_t / T^2`` (each
    task's variance as its own interval uses it, ``max(clustered, iid)``) and the clustered
    variance of ``U`` over all videos (which adds the covariance of tasks that share videos).
    ``n*`` is capped at the Kish size ``T^2 / sum_t 1/n_t`` (the sample size of a mean with these
    weights) and is that size when ``V`` is 0 or ``U`` is 0 or 100 %. With one task this is the
    overall's interval exactly; with equal tasks of equal accuracy it is the pooled one.
    """
    order = _task_order(tasks)
    n = len(tasks)
    if n == 0:
        return Score(per_task=[], overall_weighted=0.0, overall_unweighted=0.0, n=0, unparsed=0,
                     rule_counts=dict(rule_counts or {}), interval_method=INTERVAL_METHOD)
    failed = np.zeros(n, dtype=bool) if failed is None else failed
    task_index = {name: i for i, name in enumerate(order)}
    t = np.fromiter((task_index[x] for x in tasks), dtype=np.int64, count=n)
    cluster_ids: dict[str, int] = {}
    g = np.fromiter((cluster_ids.setdefault(v, len(cluster_ids)) for v in videos), dtype=np.int64, count=n)
    x = correct.astype(np.float64)
    n_t = np.bincount(t, minlength=len(order)).astype(np.float64)
    correct_t = np.bincount(t, weights=x, minlength=len(order))
    unparsed_t = np.bincount(t, weights=(~parsed).astype(np.float64), minlength=len(order))
    failed_t = np.bincount(t, weights=failed.astype(np.float64), minlength=len(order))
    mean_t = correct_t / n_t
    resid_task = x - mean_t[t]

    per_task: list[TaskScore] = []
    var_t = np.empty(len(order))
    for i, name in enumerate(order):
        mask = t == i
        se = _clustered_se(resid_task[mask] / n_t[i], g[mask])
        acc = 100.0 * mean_t[i]
        ci = _wilson(mean_t[i], n_t[i], se)
        var_t[i] = max(0.0 if se is None else se**2, mean_t[i] * (1.0 - mean_t[i]) / n_t[i])
        per_task.append(
            TaskScore(
                task=name,
                n=int(n_t[i]),
                correct=int(correct_t[i]),
                unparsed=int(unparsed_t[i]),
                accuracy=acc,
                stderr=None if se is None else 100.0 * se,
                ci95=ci,
                failed=int(failed_t[i]),
            )
        )

    weighted = 100.0 * x.mean()
    se_w = _clustered_se((x - x.mean()) / n, g)
    n_tasks = len(order)
    mean_u = float(np.mean(mean_t))
    unweighted = 100.0 * mean_u
    se_u = _clustered_se(resid_task / (n_tasks * n_t[t]), g)
    var_u = max(float(var_t.sum()) / n_tasks**2, 0.0 if se_u is None else se_u**2)
    n_kish = n_tasks**2 / float(np.sum(1.0 / n_t))
    spread = mean_u * (1.0 - mean_u)
    n_u = min(n_kish, spread / var_u) if var_u > 0 and spread > 0 else n_kish
    return Score(
        per_task=per_task,
        overall_weighted=weighted,
        overall_unweighted=unweighted,
        n=n,
        unparsed=int((~parsed).sum()),
        rule_counts=dict(sorted((rule_counts or {}).items(), key=lambda kv: -kv[1])),
        stderr_weighted=None if se_w is None else 100.0 * se_w,
        ci95_weighted=_wilson(float(x.mean()), float(n), se_w),
        stderr_unweighted=None if se_u is None else 100.0 * se_u,
        ci95_unweighted=_wilson_interval(mean_u, n_u),
        failed=int(failed.sum()),
        interval_method=INTERVAL_METHOD,
    )


def _clustered_se(contributions: np.ndarray, clusters: np.ndarray) -> float | None:
    """Cluster-robust standard error of a linear estimator from its per-item contributions."""
    sums = np.bincount(clusters, weights=contributions)
    used = np.bincount(clusters) > 0
    n_clusters = int(used.sum())
    if n_clusters < 2:
        return None
    return float(np.sqrt(n_clusters / (n_clusters - 1) * np.sum(sums[used] ** 2)))


def _wilson(p: float, n: float, se_clustered: float | None) -> tuple[float, float]:
    """Wilson 95% interval (percent) for a proportion ``p`` of ``n`` items, on the effective
    sample size left after clustering (see :func:`compute_score`)."""
    n_eff = n
    iid_var = p * (1.0 - p) / n
    if se_clustered is not None and iid_var > 0:
        n_eff = n / max(1.0, se_clustered**2 / iid_var)
    return _wilson_interval(p, n_eff)


def _wilson_interval(p: float, n_eff: float) -> tuple[float, float]:
    z2 = _Z95**2
    centre = (p + z2 / (2 * n_eff)) / (1 + z2 / n_eff)
    half = _Z95 * np.sqrt(p * (1 - p) / n_eff + z2 / (4 * n_eff**2)) / (1 + z2 / n_eff)
    return (float(max(0.0, 100.0 * (centre - half))), float(min(100.0, 100.0 * (centre + half))))


def averages_labels(report: ScoreReport) -> tuple[str, str]:
    """Row labels of the two averages, saying over how many items and tasks they are."""
    score = report.score
    custom = custom_tasks(report)
    if custom:
        tasks = f"{len(score.per_task)} tasks, {len(custom)} not VideoEspresso's"
    elif not report.complete:
        tasks = f"{benchmark_task_count(report)} of {len(TASKS)} tasks"
    else:
        tasks = f"{len(TASKS)} tasks"
    return (
        f"Overall (weighted, leaderboard; {score.n} items)",
        f"Avg. (unweighted, paper; {tasks})",
    )


def benchmark_task_count(report: ScoreReport) -> int:
    """How many of the 14 benchmark tasks the report scores."""
    return sum(find_task(t.task) is not None for t in report.score.per_task)


def partial_note(report: ScoreReport) -> str | None:
    """What ``score`` and the UI say of a run that misses benchmark tasks; None for a full run."""
    if report.complete or custom_tasks(report):
        return None
    return f"partial run: {benchmark_task_count(report)} of {len(TASKS)} tasks; its averages are not comparable with the leaderboard's"


def weighted_overall(per_task: dict[str, float], counts: dict[str, int]) -> float:
    """The leaderboard's Overall from per-task accuracies and question counts."""
    total = sum(counts[t] for t in per_task)
    return sum(per_task[t] * counts[t] for t in per_task) / total


def score_file(
    path: str | Path,
    bench_path: str | Path | None = None,
    *,
    mode: Mode = "default",
    failed: FailedRule = "wrong",
    embedder: "TextEmbedder | None" = None,
    judge: "ChatModel | None" = None,
    embedding_margin: float = 0.0,
    partial: bool = False,
    name: str | None = None,
    tasks_any: bool = False,
) -> ScoreReport:
    """Read a predictions file (and optionally the benchmark) and score it."""
    import gc

    # Millions of small records, none of them cyclic: the cyclic collector would rescan the
    # growing heap again and again for nothing (it doubled the time for 10^6 predictions).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _score_file(
            path, bench_path, mode=mode, failed=failed, embedder=embedder, judge=judge,
            embedding_margin=embedding_margin, partial=partial, name=name, tasks_any=tasks_any,
        )
    finally:
        if was_enabled:
            gc.enable()


def run_bench_sha256(predictions: str | Path) -> str | None:
    """The benchmark fingerprint recorded in the eval manifest beside a predictions file (None
    when there is no readable eval manifest)."""
    from ..formats.manifest import read_manifest

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
    from ..formats.bench import bench_fingerprint

    recorded = run_bench_sha256(predictions)
    if recorded is not None and recorded != (actual := bench_fingerprint(bench_path)):
        raise FormatError(
            f"{predictions} was run on another benchmark file (SHA-256 {recorded[:12]}... in its run manifest) "
            f"than {bench_path} ({actual[:12]}...); score it with the benchmark it was run on"
        )


def _score_file(
    path: str | Path,
    bench_path: str | Path | None,
    *,
    mode: Mode,
    failed: FailedRule,
    embedder: "TextEmbedder | None",
    judge: "ChatModel | None",
    embedding_margin: float,
    partial: bool,
    name: str | None,
    tasks_any: bool,
) -> ScoreReport:
    records, problems = read_predictions(path, keep_all=mode == "legacy")
    bench = None
    if bench_path is not None:
        from ..formats.bench import read_bench

        bench = read_bench(bench_path)
        check_bench_matches(path, bench_path)
    return score_records(
        records,
        bench,
        mode=mode,
        failed=failed,
        embedder=embedder,
        judge=judge,
        embedding_margin=embedding_margin,
        problems=problems,
        partial=partial,
        name=name if name is not None else Path(path).stem,
        source=str(path),
        tasks_any=tasks_any,
    ).model_copy(update={"protocols": run_protocols(path)})


def run_protocols(predictions: str | Path) -> list[str]:
    """How the run behind a predictions file was produced, from its run manifest (one line)."""
    from ..formats.manifest import read_manifest
    from .protocol import describe_settings

    try:
        manifest = read_manifest(predictions)
    except ConfigError:  # a broken manifest is eval's concern; scoring does not need it
        return []
    if manifest is None or manifest.get("kind") != "eval":
        return []
    return [describe_settings(manifest["settings"])]
