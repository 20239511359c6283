"""Close-ended scoring: the default scorer (our answer extraction) and the legacy one (exactly
what the official ``score.py`` counts), both filling one :class:`_Tally` of per-item outcomes that
:func:`~videoespresso.bench.stats.compute_score` turns into accuracies and intervals.

Bad input never stops scoring: malformed lines, records without the fields scoring needs,
duplicate ids (the first is kept), ids the benchmark does not have, and benchmark questions
without a prediction are each reported as a :class:`Problem`; the rest is scored.
"""

from __future__ import annotations

import gc
import itertools
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Literal, Sequence

import numpy as np
from pydantic import BaseModel, Field

from ..errors import ConfigError
from ..formats.bench import read_bench
from ..schema import TASKS, BenchItem, Score, closest_task, find_task
from .extract import Extraction, Mode, extract_answer, legacy_extract
from .predictions import PredictionRecord, Problem, check_bench_matches, correct_letter, read_predictions, run_protocols
from .stats import compute_score

if TYPE_CHECKING:
    from ..models.protocols import ChatModel, TextEmbedder

FailedRule = Literal["wrong", "exclude"]
#: The task bucket of elements that name none (score.py counts them in its one accuracy).
NO_TASK = "(no task)"


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


@dataclass(slots=True)
class _Tally:
    """What both scorers collect: one entry per scored item in each column, the rule counts, a few
    unparsed replies, the items the run could not answer and the problems found."""

    found: list[Problem]
    max_examples: int
    ids: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)
    parsed: list[bool] = field(default_factory=list)
    failed: list[bool] = field(default_factory=list)
    rules: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def add(self, item_id: str, task: str, video: str, correct: bool, parsed: bool, failed: bool, rule: str) -> None:
        """One scored item (``task`` is its canonical name)."""
        self.ids.append(item_id)
        self.tasks.append(task)
        self.videos.append(video)
        self.correct.append(correct)
        self.parsed.append(parsed)
        self.failed.append(failed)
        self.rules[rule] += 1

    def unparsed(self, item_id: str, task: str | None, rule: str, output: Any) -> None:
        """A reply no rule could read, kept as an example while there are fewer than ``max_examples``."""
        if len(self.examples) < self.max_examples:
            text = output if isinstance(output, str) else repr(output)
            self.examples.append({"id": item_id, "task": task, "rule": rule, "output": text[:500]})

    def report(
        self,
        *,
        name: str,
        source: str | None,
        mode: str,
        failed_rule: FailedRule,
        tasks_any: bool,
        outcomes: dict[str, tuple[str, str, bool]] | None,
    ) -> ScoreReport:
        """Check the task names, fill ``outcomes`` and score what was collected."""
        if not tasks_any:
            # Failed items are in ``tasks`` unless they were left out of the accuracies.
            left_out = ((f["task"], f["id"]) for f in self.failures) if failed_rule == "exclude" else ()
            check_task_names(itertools.chain(zip(self.tasks, self.ids), left_out), source or "predictions")
        if outcomes is not None:
            outcomes.update(zip(self.ids, zip(self.tasks, self.videos, self.correct)))
        score = compute_score(
            self.tasks, self.videos, np.asarray(self.correct, dtype=bool), np.asarray(self.parsed, dtype=bool),
            self.rules, failed=np.asarray(self.failed, dtype=bool),
        )
        if failed_rule == "exclude":
            score = score.model_copy(update={"failed": len(self.failures)})
        present = {t.task for t in score.per_task}
        return ScoreReport(
            name=name,
            source=source,
            mode=mode,
            score=score,
            problems=self.found,
            problem_counts=dict(Counter(p.kind for p in self.found)),
            unparsed_examples=self.examples,
            failures=self.failures,
            failed_rule=failed_rule,
            complete=all(t.paper_name in present for t in TASKS),
        )


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
    tally = _Tally(list(problems), max_examples)
    by_id = {item.id: item for item in bench} if bench is not None else None
    if mode == "legacy":
        seen = score_legacy(records, by_id, tally)
        failed, missing = "wrong", "no prediction (score.py would not know it; not counted)"
    else:
        seen = _score_default(records, by_id, tally, failed, embedder, judge, embedding_margin)
        missing = "no prediction"
    if by_id is not None and not partial:
        # Our scoring does not report an item whose record is already reported as invalid a
        # second time as missing; score.py knows only the elements it counted.
        known = seen if mode == "legacy" else seen | {p.id for p in tally.found if p.id is not None}
        tally.found.extend(Problem(kind="missing_prediction", id=item_id, message=f"item {item_id}: {missing}")
                           for item_id in by_id if item_id not in known)
    return tally.report(name=name, source=source, mode=mode, failed_rule=failed, tasks_any=tasks_any, outcomes=outcomes)


def _score_default(
    records: Sequence[PredictionRecord],
    by_id: dict[str, BenchItem] | None,
    tally: _Tally,
    failed: FailedRule,
    embedder: "TextEmbedder | None",
    judge: "ChatModel | None",
    embedding_margin: float,
) -> set[str]:
    """Score with our answer extraction into ``tally``; returns the ids read (the first of each kept)."""
    found = tally.found
    seen: set[str] = set()
    memo: dict[tuple[Any, ...], Extraction] = {}
    for rec in records:
        if rec.id in seen:
            found.append(
                Problem(kind="duplicate_id", id=rec.id, line=rec.line, message=f"item {rec.id}: duplicate prediction (the first was kept)")
            )
            continue
        seen.add(rec.id)
        fields = _scorable(rec, by_id, found)
        if fields is None:
            continue
        task, truth, options, video = fields
        video = video or f"item:{rec.id}"
        if rec.error is not None:
            tally.failures.append({"id": rec.id, "task": task, "reason": rec.error})
            if failed != "exclude":
                tally.add(rec.id, task_key(task), video, False, True, True, "failed")
            continue
        result = _extract(rec, options, memo, embedder, judge, embedding_margin)
        tally.add(rec.id, task_key(task), video, result.letter is not None and result.letter == truth,
                  result.letter is not None, False, _rule_family(result.rule))
        if result.letter is None:
            tally.unparsed(rec.id, task, result.rule, rec.output)
    return seen


def _scorable(
    rec: PredictionRecord, by_id: dict[str, BenchItem] | None, found: list[Problem]
) -> tuple[str, str, list[str] | None, str | None] | None:
    """The task, truth, options and video to score ``rec`` with (the benchmark's when given), or
    None once the reason it cannot be scored is in ``found``."""
    task, truth, options, video = rec.task, rec.correct, rec.options, rec.video
    if by_id is not None:
        item = by_id.get(rec.id)
        if item is None:
            found.append(
                Problem(kind="unknown_id", id=rec.id, line=rec.line, message=f"item {rec.id}: not in the benchmark")
            )
            return None
        task, truth, options, video = item.task, item.correct_answer, item.options, item.video_path
    if rec.defect is not None:
        found.append(Problem(kind="invalid_record", id=rec.id, line=rec.line, message=f"item {rec.id}: {rec.defect}"))
        return None
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
        return None
    return task, truth, options, video


def _extract(
    rec: PredictionRecord,
    options: list[str] | None,
    memo: dict[tuple[Any, ...], Extraction],
    embedder: "TextEmbedder | None",
    judge: "ChatModel | None",
    embedding_margin: float,
) -> Extraction:
    """The answer read from ``rec``: its logprob letter, else extracted once per distinct reply and options."""
    if rec.rule == "logprob" and rec.letter is not None:
        return Extraction(rec.letter, "logprob")
    # A non-string output (a list, a number) is keyed by its type and repr: lists are unhashable.
    output_key = rec.output if isinstance(rec.output, str) or rec.output is None else (type(rec.output).__name__, repr(rec.output))
    key = (output_key, tuple(options) if options else None)
    result = memo.get(key)
    if result is None:
        result = memo[key] = extract_answer(
            rec.output, options, embedder=embedder, embedding_margin=embedding_margin, judge=judge
        )
    return result


def _rule_family(rule: str) -> str:
    # "none:ambiguous:AB" is counted with every other ambiguous reply.
    parts = rule.split(":")
    return ":".join(parts[:2]) if parts[0] == "none" else parts[0]


def score_legacy(
    records: Sequence[PredictionRecord], by_id: dict[str, BenchItem] | None, tally: _Tally
) -> Counter[str]:
    """Count exactly what the official ``score.py`` counts: every element, right or wrong.

    score.py divides by ``len(data)`` and counts an element right when the first capital A-D of
    its ``model_output`` equals the first capital A-D of its ``correct_answer``. So elements
    without an output, with a non-string output, with a truth only that rule can read
    (``"Option (B)"``, ``"[C]"``) or with none at all, and repeated ids all count, each once per
    appearance. Read the file with ``read_predictions(path, keep_all=True)`` to keep the elements
    without an output. A failed item (its output is empty) is wrong.

    Where the truth is missing from an element and the benchmark (``by_id``) has its id, the benchmark's letter
    is used (our JSONL lines always carry it). Differences from our own scoring are listed as
    problems of kind ``legacy_*`` (counted, unlike the default mode's problems); an element that
    is not an object, where score.py itself would stop with an error, is counted wrong.

    Fills ``tally``; returns how many times each id appeared.
    """
    seen: Counter[str] = Counter()
    for rec in records:
        item = by_id.get(rec.id) if by_id is not None else None
        task = rec.task or (item.task if item is not None else None)
        if rec.error is not None:
            tally.failures.append({"id": rec.id, "task": task, "reason": rec.error})
        seen[rec.id] += 1
        truth = _legacy_truth(rec, item, seen[rec.id], tally.found)
        letter = legacy_extract(rec.output)
        failed = rec.error is not None
        video = rec.video or (item.video_path if item is not None else None) or f"item:{rec.id}:{rec.line}"
        tally.add(rec.id, task_key(task) if task else NO_TASK, video, letter is not None and letter == truth,
                  letter is not None or failed, failed, "failed" if failed else ("legacy" if letter else "none:legacy"))
        if letter is None and not failed:
            tally.unparsed(rec.id, task, "none:legacy", rec.output)
    return seen


def _legacy_truth(rec: PredictionRecord, item: BenchItem | None, times_seen: int, found: list[Problem]) -> str | None:
    """score.py's truth letter for ``rec``; each way the element differs from what our own
    scoring would count goes into ``found`` as a ``legacy_*`` problem."""
    truth_raw = rec.correct_raw if rec.correct_raw is not None else rec.correct
    if truth_raw is None and item is not None:
        truth_raw = f"({item.correct_answer})"
    output = rec.output
    where = f"item {rec.id}" + (f" (line {rec.line})" if rec.line is not None else "")
    if times_seen == 2:
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
    return truth


def partial_note(report: ScoreReport) -> str | None:
    """What ``score`` and the UI say of a run that is not the whole benchmark (a custom one, or
    one missing benchmark tasks); None for a full run."""
    custom = custom_tasks(report)
    if custom:
        return (f"custom benchmark: {len(custom)} tasks are not VideoEspresso's ({', '.join(custom[:5])}); "
                "no average here is comparable with the leaderboard's")
    if report.complete:
        return None
    return f"partial run: {benchmark_task_count(report)} of {len(TASKS)} tasks; its averages are not comparable with the leaderboard's"


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    # Millions of small records, none of them cyclic: the cyclic collector would rescan the
    # growing heap again and again for nothing (it doubled the time for 10^6 predictions).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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
    with _cyclic_gc_paused():
        records, problems = read_predictions(path, keep_all=mode == "legacy")
        bench = None
        if bench_path is not None:
            bench = read_bench(bench_path)
            check_bench_matches(path, bench_path)
        report = score_records(
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
        )
        return report.model_copy(update={"protocols": run_protocols(path)})
