"""The in-process executor: runs a stage list batch by batch, resuming from the store."""

from __future__ import annotations

import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..failpoints import failpoint
from .stage import DROP, FAILURE, FROM, PROVENANCE, WARNINGS, Item, Stage, content_hash
from .store import ResultKey, Store, StoredResult


#: Failed items listed by name per stage (all are counted).
MAX_LISTED = 200


@dataclass
class StageStats:
    """What one stage did in one run. ``cached`` inputs were answered by the store."""

    name: str
    version: str
    inputs: int = 0
    outputs: int = 0
    ok: int = 0
    failed: int = 0
    dropped: int = 0
    errors: int = 0
    cached: int = 0
    missing: int = 0
    computed: int = 0
    seconds: float = 0.0
    model_calls: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    failure_reasons: Counter = field(default_factory=Counter)
    drop_reasons: Counter = field(default_factory=Counter)
    warning_reasons: Counter = field(default_factory=Counter)
    #: The failed items by name: ``{"id", "reason", "detail"}`` (the first ``MAX_LISTED``).
    failures: list[dict[str, str]] = field(default_factory=list)

    def note_failure(self, item_id: str, reason: str, detail: str | None) -> None:
        if len(self.failures) < MAX_LISTED:
            self.failures.append({"id": item_id, "reason": reason, "detail": (detail or "")[:300]})

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "version": self.version, "inputs": self.inputs,
            "outputs": self.outputs, "ok": self.ok, "failed": self.failed,
            "dropped": self.dropped, "errors": self.errors, "cached": self.cached, "missing": self.missing,
            "computed": self.computed, "seconds": round(self.seconds, 4),
            "model_calls": self.model_calls,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "failure_reasons": dict(self.failure_reasons),
            "drop_reasons": dict(self.drop_reasons),
            "warning_reasons": dict(self.warning_reasons),
            "failures": list(self.failures),
        }


@dataclass
class RunResult:
    items: list[Item]
    stages: list[StageStats]
    seconds: float

    def stage(self, name: str) -> StageStats:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 4),
            "final_items": len(self.items),
            "stages": [s.to_dict() for s in self.stages],
        }


class LocalExecutor:
    """Runs stages in this process, one after the other, ``resources.batch_size`` items a call.

    Each input's result is looked up in the store by (stage, version, prompt hash, params hash,
    input hash) first; only missing (or previously errored) inputs reach :meth:`Stage.process`,
    and a stage whose inputs are all stored is never set up (its models are never loaded).
    """

    def __init__(self, store: Store, *, console: Console | None = None, progress: bool = True) -> None:
        self.store = store
        self.console = console or Console(stderr=True)
        self.show_progress = progress
        self._ready: set[int] = set()

    def run(self, stages: Sequence[Stage], items: Sequence[Item], replay_only: set[str] | None = None) -> RunResult:
        """Run ``stages`` over ``items``; stages named in ``replay_only`` only read the store
        (inputs they never finished are left out and counted as ``missing``)."""
        start = time.perf_counter()
        run_id = self.store.start_run()
        current = [dict(i) for i in items]
        stats: list[StageStats] = []
        with Progress(
            TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=self.console, disable=not self.show_progress,
        ) as progress:
            for stage in stages:
                failpoint(f"build:before:{stage.name}")
                current, st = self._run_stage(stage, current, progress, stage.name in (replay_only or ()))
                stats.append(st)
        result = RunResult(items=current, stages=stats, seconds=time.perf_counter() - start)
        self.store.finish_run(run_id, result.to_dict())
        return result

    def _run_stage(
        self, stage: Stage, items: list[Item], progress: Progress, replay: bool = False
    ) -> tuple[list[Item], StageStats]:
        st = StageStats(name=stage.name, version=stage.version, inputs=len(items))
        t0 = time.perf_counter()
        ids = [i.get("id") for i in items]
        if any(not isinstance(i, str) for i in ids) or len(set(ids)) != len(ids):
            raise ValueError(f"stage {stage.name}: input items need unique string ids")
        prompt_hash, params_hash = stage.prompt_hash(), stage.params_hash()
        keys = [
            ResultKey(stage.name, stage.version, prompt_hash, params_hash, content_hash(item))
            for item in items
        ]
        results: dict[str, StoredResult] = self.store.get_many(keys)
        st.cached = len(results)
        todo = [(item, key) for item, key in zip(items, keys) if key.key not in results]
        if replay:
            st.missing = len(todo)
            todo = []
        task = progress.add_task(stage.name, total=len(items), completed=st.cached)
        if todo:
            stamp = content_hash(stage.fingerprint())[:12]
            st.model_calls, st.timings = self._compute(stage, todo, stamp, results, lambda n: progress.advance(task, n))
            st.computed = len(todo)
        outputs: list[Item] = []
        for key in keys:
            res = results.get(key.key)
            if res is None:
                continue
            if res.status == "ok":
                st.ok += 1
                outputs.extend(res.outputs)
                for out in res.outputs:
                    for w in out.get(WARNINGS, []):
                        if w.get("stage") == stage.name:
                            st.warning_reasons[w["reason"]] += 1
            elif res.status == "dropped":
                st.dropped += 1
                st.drop_reasons[res.reason or "unknown"] += 1
            elif res.status == "failed":
                st.failed += 1
                st.failure_reasons[res.reason or "unknown"] += 1
                st.note_failure(res.item_id, res.reason or "unknown", res.detail)
            else:
                st.errors += 1
                st.failure_reasons[res.reason or "error"] += 1
                st.note_failure(res.item_id, res.reason or "error", res.detail)
        st.outputs = len(outputs)
        st.seconds = time.perf_counter() - t0
        return outputs, st

    def _compute(
        self, stage: Stage, todo: list[tuple[Item, ResultKey]], stamp: str,
        results: dict[str, StoredResult], advance: Callable[[int], None],
    ) -> tuple[int, dict[str, float]]:
        """Process ``todo`` batch by batch, write each batch to the store as it returns and into
        ``results``; return the model calls made and the time by kind. Other executors override
        this (and only this)."""
        timings_before = dict(stage.timings)
        calls_before = stage.model_calls
        if id(stage) not in self._ready:
            with stage.timed("setup"):
                stage.setup()
            self._ready.add(id(stage))
        size = max(1, stage.resources.batch_size)
        for begin in range(0, len(todo), size):
            batch = todo[begin : begin + size]
            batch_results = process_batch(stage, batch, stamp)
            self.store.put_many(batch_results)
            for key, res in batch_results:
                results[key.key] = res
            if begin == 0:
                failpoint(f"build:mid:{stage.name}")
            advance(len(batch))
        timings = {
            k: v - timings_before.get(k, 0.0) for k, v in stage.timings.items()
            if v - timings_before.get(k, 0.0) > 0
        }
        return stage.model_calls - calls_before, timings


def process_batch(
    stage: Stage, batch: list[tuple[Item, ResultKey]], stamp: str
) -> list[tuple[ResultKey, StoredResult]]:
    """Run one batch through ``stage.process``: one result per input (outputs stamped with
    provenance, a failure, a drop, or an error isolated to the item that raised)."""
    start = time.perf_counter()
    try:
        outs = stage.process([item for item, _ in batch])
        grouped = _group_by_source(stage, [item for item, _ in batch], outs)
    except Exception as exc:
        if len(batch) > 1:
            # Isolate the item that raised so the rest of the batch still gets its results.
            isolated: list[tuple[ResultKey, StoredResult]] = []
            for one in batch:
                isolated.extend(process_batch(stage, [one], stamp))
            return isolated
        item, key = batch[0]
        return [(key, StoredResult(
            key=key.key, stage=stage.name, item_id=item["id"], status="error", outputs=[],
            reason=type(exc).__name__, detail=str(exc),
            raw="".join(traceback.format_exception(exc)),
            seconds=time.perf_counter() - start,
        ))]
    per_item = (time.perf_counter() - start) / len(batch)
    written: list[tuple[ResultKey, StoredResult]] = []
    for item, key in batch:
        produced = grouped.get(item["id"], [])
        failure = next((o[FAILURE] for o in produced if FAILURE in o), None)
        drop = next((o[DROP] for o in produced if DROP in o), None)
        if failure is not None:
            res = StoredResult(key.key, stage.name, item["id"], "failed", [], failure.get("reason"),
                               failure.get("detail"), failure.get("raw"), per_item)
        elif drop is not None:
            res = StoredResult(key.key, stage.name, item["id"], "dropped", [], drop.get("reason"),
                               drop.get("detail"), None, per_item)
        else:
            for out in produced:
                out[PROVENANCE] = {**item.get(PROVENANCE, {}), stage.name: stamp}
            res = StoredResult(key.key, stage.name, item["id"], "ok", produced, seconds=per_item)
        written.append((key, res))
    return written


def _group_by_source(stage: Stage, inputs: list[Item], outs: list[Item]) -> dict[str, list[Item]]:
    ids = {i["id"] for i in inputs}
    grouped: dict[str, list[Item]] = {}
    for out in outs:
        source = out.get(FROM)
        if source is None and len(inputs) == 1:
            source = inputs[0]["id"]
            out[FROM] = source
        if source not in ids:
            raise RuntimeError(
                f"stage {stage.name} returned an item ({out.get('id')!r}) that names no input of its "
                "batch in '_from'; build outputs with engine.derive()"
            )
        grouped.setdefault(source, []).append(out)
    return grouped


def summary_table(result: RunResult) -> Table:
    """The per-stage counts of a run as a Rich table."""
    table = Table(title=f"build summary ({result.seconds:.1f} s)")
    for col in ("stage", "in", "out", "cached", "failed", "dropped", "errors", "model calls", "s"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for s in result.stages:
        table.add_row(
            s.name, str(s.inputs), str(s.outputs), str(s.cached), str(s.failed), str(s.dropped),
            str(s.errors), str(s.model_calls), f"{s.seconds:.2f}",
        )
    return table


def reasons_table(result: RunResult) -> Table | None:
    """Failures, drops and warnings by stage and reason, or None when there were none."""
    rows = []
    for s in result.stages:
        for kind, counter in (("failed", s.failure_reasons), ("dropped", s.drop_reasons), ("warning", s.warning_reasons)):
            for reason, n in sorted(counter.items()):
                rows.append((s.name, kind, reason, str(n)))
    if not rows:
        return None
    table = Table(title="by reason")
    for col in ("stage", "kind", "reason", "count"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for row in rows:
        table.add_row(*row)
    return table


def print_summary(result: RunResult, console: Console) -> None:
    console.print(summary_table(result))
    reasons = reasons_table(result)
    if reasons is not None:
        console.print(reasons)
