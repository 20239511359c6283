"""A selector over a whole benchmark, resumable: what ``videoespresso select`` runs.

Each question's result (a selection or the reason it failed) is appended to a journal,
``<out>.partial.jsonl``, as soon as it is known (flushed and fsynced), so a killed run loses at
most the question in flight. When every question is done the selections file is written
atomically in benchmark order and the journal removed: a rerun after a crash writes the same
bytes an uninterrupted run writes. A rerun reuses what the file and the journal hold and, by
default, tries the failed questions again. ``<out>.lock`` keeps a second run off the same file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import FormatError, UserError
from ..schema import Selection
from .store import read_selections_file, save_selections

if TYPE_CHECKING:
    from ..engine.journal import Journal


@dataclass
class SelectSummary:
    total: int
    reused: int = 0
    selected: int = 0
    failed: int = 0
    #: Questions whose earlier failed attempt was tried again in this run.
    retried: int = 0
    #: Questions in the file now, and their mean frame count.
    in_file: int = 0
    mean_frames: float = 0.0
    failure_reasons: Counter[str] = field(default_factory=Counter)
    #: Whether the run went through the selector at all (a done rerun loads no model).
    ran_selector: bool = False
    stats: dict[str, int] = field(default_factory=dict)


def _read_journal(journal: "Journal") -> tuple[dict[str, Selection], dict[str, str]]:
    """What the journal holds, the last line of an id winning (a retried question's result)."""
    selections: dict[str, Selection] = {}
    failures: dict[str, str] = {}
    for obj in journal.records():
        qid = obj["id"]
        if "selection" in obj:
            try:
                selections[qid] = Selection.model_validate(obj["selection"])
            except ValueError:
                continue
            failures.pop(qid, None)
        elif isinstance(obj.get("error"), str):
            failures[qid] = obj["error"]
            selections.pop(qid, None)
    return selections, failures


def run_select(
    items: Sequence[Any],
    make_selector: Callable[[], Any],
    out: Path,
    video_root: Path,
    *,
    retry_failed: bool = True,
    on_item: Callable[[str], None] | None = None,
    journal: "Journal | None" = None,
) -> SelectSummary:
    """Select frames for every item not yet in ``out`` (or its journal); see the module doc.

    ``make_selector`` is called only when something is left to select. ``journal`` is ``out``
    already opened by the caller (locked, manifest checked); without it ``out`` is opened here,
    with no manifest.
    """
    if journal is not None:
        return _run_select(items, make_selector, journal, video_root, retry_failed=retry_failed, on_item=on_item)
    with open_selections(out) as opened:
        return _run_select(items, make_selector, opened, video_root, retry_failed=retry_failed, on_item=on_item)


def open_selections(out: Path, **manifest: Any) -> "Journal":
    """The :class:`~videoespresso.engine.journal.Journal` of a selections file (a side journal,
    folded into ``out`` at the end); ``manifest`` holds its ``kind``/``settings``/``overwrite``."""
    from ..engine.journal import Journal

    return Journal(out, "selections file", sidecar=True, **manifest)


def _run_select(
    items: Sequence[Any],
    make_selector: Callable[[], Any],
    journal: "Journal",
    video_root: Path,
    *,
    retry_failed: bool,
    on_item: Callable[[str], None] | None,
) -> SelectSummary:
    from ..bench.run import resolve_video
    from ..failpoints import failpoint

    out = journal.out
    selections: dict[str, Selection] = {}
    failures: dict[str, str] = {}
    if out.is_file() and out.stat().st_size > 0:
        try:
            selections, failures = read_selections_file(out)
        except FormatError as exc:
            raise UserError(f"cannot resume: {exc}; pass --overwrite to start over") from None
    more, more_failed = _read_journal(journal)
    for qid, reason in more_failed.items():
        selections.pop(qid, None)
        failures[qid] = reason
    for qid, sel in more.items():
        failures.pop(qid, None)
        selections[qid] = sel

    summary = SelectSummary(total=len(items))
    todo = []
    for item in items:
        if item.id in selections or (item.id in failures and not retry_failed):
            summary.reused += 1
            if on_item:
                on_item(item.id)
        else:
            if item.id in failures:
                summary.retried += 1
            todo.append(item)
    chooser = None
    if todo:
        chooser = make_selector()
        summary.ran_selector = True
    for item in todo:
        try:
            video = resolve_video(item, video_root)
            sel = chooser.select(video, item.question, item_id=item.id, options=item.options)
        except UserError as exc:
            reason = str(exc)
            journal.append({"id": item.id, "error": reason})
            selections.pop(item.id, None)
            failures[item.id] = reason
            summary.failed += 1
            summary.failure_reasons[reason] += 1
        else:
            journal.append({"id": item.id, "selection": sel.model_dump(mode="json")})
            failures.pop(item.id, None)
            selections[item.id] = sel
            summary.selected += 1
        failpoint("select:mid")
        if on_item:
            on_item(item.id)

    # Benchmark order first, then whatever an earlier run over other items left in the file.
    ids = [i.id for i in items]
    order = list(dict.fromkeys(ids + sorted((set(selections) | set(failures)) - set(ids))))
    save_selections(
        out,
        {q: selections[q] for q in order if q in selections},
        {q: failures[q] for q in order if q in failures},
    )
    journal.discard_journal()
    summary.in_file = len(selections)
    if selections:
        summary.mean_frames = sum(len(s.frames) for s in selections.values()) / len(selections)
    if chooser is not None and getattr(chooser, "stats", None):
        summary.stats = dict(chooser.stats)
    return summary
