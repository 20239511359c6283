"""Paired comparison of two runs on the same benchmark items.

Two runs answer the same questions, so their accuracies are compared item by item: for each task
and overall, the difference in accuracy (B - A, in points), an exact McNemar test on the items
where exactly one run is right, and a 95% interval of the difference from a paired bootstrap
that resamples whole videos (questions about one video are not independent). Only items both
runs scored are compared; the others are counted.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
from pydantic import BaseModel, Field

from ..errors import FormatError
from ..schema import BenchItem
from .predictions import PredictionRecord, read_predictions, run_bench_sha256
from .score import FailedRule, score_records, task_key
from .stats import task_order

METHOD = ("difference B - A in accuracy points; p: exact two-sided McNemar test on discordant items; "
          "95% CI: paired bootstrap resampling videos")


class PairedResult(BaseModel):
    task: str
    n: int
    accuracy_a: float
    accuracy_b: float
    difference: float
    #: Items only A got right / only B got right.
    only_a: int
    only_b: int
    p_value: float
    ci95: tuple[float, float]


class Comparison(BaseModel):
    name_a: str
    name_b: str
    overall: PairedResult
    per_task: list[PairedResult]
    only_in_a: int = 0
    only_in_b: int = 0
    bootstrap: int = 0
    seed: int = 0
    method: str = METHOD
    failed_rule: str = "wrong"
    notes: list[str] = Field(default_factory=list)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of the discordant pairs at 1/2."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    # log-space terms keep this exact enough for thousands of discordant items
    log_half_n = -n * math.log(2.0)
    tail = sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half_n) for i in range(k + 1))
    return min(1.0, 2.0 * tail)


def _paired(task: str, a: np.ndarray, b: np.ndarray, videos: np.ndarray, draws: np.ndarray) -> PairedResult:
    only_a = int(np.sum(a & ~b))
    only_b = int(np.sum(~a & b))
    d = b.astype(np.float64) - a.astype(np.float64)
    # Per-video sums of the difference and of the item count; a bootstrap draw picks videos.
    _, inverse = np.unique(videos, return_inverse=True)
    d_sum = np.bincount(inverse, weights=d)
    n_sum = np.bincount(inverse).astype(np.float64)
    picks = draws % len(d_sum)
    boot = 100.0 * d_sum[picks].sum(axis=1) / n_sum[picks].sum(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return PairedResult(
        task=task,
        n=len(a),
        accuracy_a=100.0 * float(a.mean()),
        accuracy_b=100.0 * float(b.mean()),
        difference=100.0 * float(d.mean()),
        only_a=only_a,
        only_b=only_b,
        p_value=mcnemar_exact(only_a, only_b),
        ci95=(float(lo), float(hi)),
    )


#: What a prediction may carry about its item, compared between runs that lack a manifest.
_ITEM_FIELDS = {
    "task": lambda r: task_key(r.task) if r.task else None,
    "video_path": lambda r: r.video,
    "correct_answer": lambda r: r.correct,
    "options": lambda r: r.options,
    "question": lambda r: r.extra.get("question"),
}


def check_same_benchmark(path_a: str | Path, path_b: str | Path, records_a: Sequence[PredictionRecord],
                         records_b: Sequence[PredictionRecord]) -> list[str]:
    """Refuse two runs that were not made on the same benchmark file; returns notes to print.

    The benchmark fingerprints in the two run manifests decide. Without both, the items the
    files share are compared on what both carry (task, video, answer, options, question): any
    difference refuses, and so does having nothing to compare.
    """
    sha_a, sha_b = run_bench_sha256(path_a), run_bench_sha256(path_b)
    if sha_a is not None and sha_b is not None:
        if sha_a != sha_b:
            raise FormatError(
                f"{path_a} and {path_b} were run on different benchmark files (SHA-256 {sha_a[:12]}... and "
                f"{sha_b[:12]}... in their run manifests); a paired comparison needs the same items"
            )
        return []
    notes = [f"{path} has no eval run manifest: its benchmark file cannot be checked"
             for path, sha in ((path_a, sha_a), (path_b, sha_b)) if sha is None]
    by_id: dict[str, PredictionRecord] = {}
    for rec in records_b:
        by_id.setdefault(rec.id, rec)  # the first of repeated ids, as scoring keeps it
    checked, differences, seen = 0, [], set()
    for rec_a in records_a:
        rec_b = None if rec_a.id in seen else by_id.get(rec_a.id)
        seen.add(rec_a.id)
        if rec_b is None:
            continue
        for name, get in _ITEM_FIELDS.items():
            value_a, value_b = get(rec_a), get(rec_b)
            if value_a is None or value_b is None:
                continue
            checked += 1
            if value_a != value_b:
                differences.append(f"item {rec_a.id}: {name} {str(value_a)[:40]!r} vs {str(value_b)[:40]!r}")
                break
    if differences:
        more = f" (and {len(differences) - 3} more)" if len(differences) > 3 else ""
        raise FormatError(f"{path_a} and {path_b} were not run on the same benchmark: "
                          f"{'; '.join(differences[:3])}{more}")
    if not checked:
        raise FormatError(f"cannot tell whether {path_a} and {path_b} were run on the same benchmark: no run "
                          "manifests, and the files carry no task, video, answer, options or question of their shared items")
    notes.append(f"compared what both files carry about their shared items ({checked} values): the same")
    return notes


def compare_runs(
    path_a: str | Path,
    path_b: str | Path,
    bench: Sequence[BenchItem] | None = None,
    *,
    failed: FailedRule = "wrong",
    bootstrap: int = 2000,
    seed: int = 0,
    tasks_any: bool = False,
) -> Comparison:
    """Compare two prediction files item by item (see the module docstring).

    Runs made on different benchmark files are refused (:func:`check_same_benchmark`)."""
    read = [read_predictions(path) for path in (path_a, path_b)]
    notes = check_same_benchmark(path_a, path_b, read[0][0], read[1][0])
    outcomes: list[dict[str, tuple[str, str, bool]]] = [{}, {}]
    for path, (records, problems), out in zip((path_a, path_b), read, outcomes):
        score_records(records, bench, failed=failed, problems=problems, partial=True, outcomes=out,
                      source=str(path), tasks_any=tasks_any)
    a_out, b_out = outcomes
    common = [i for i in a_out if i in b_out]
    if not common:
        raise FormatError(f"{path_a} and {path_b} have no scored item in common")
    tasks = np.asarray([a_out[i][0] for i in common])
    videos = np.asarray([a_out[i][1] for i in common])
    a = np.asarray([a_out[i][2] for i in common], dtype=bool)
    b = np.asarray([b_out[i][2] for i in common], dtype=bool)
    rng = np.random.default_rng(seed)
    # One set of random integers serves every task: reduced modulo each task's video count.
    draws = rng.integers(0, np.iinfo(np.int64).max, size=(bootstrap, len(set(videos.tolist()))))
    overall = _paired("Overall", a, b, videos, draws)
    per_task = []
    for task in task_order(tasks.tolist()):
        mask = tasks == task
        task_videos = videos[mask]
        task_draws = draws[:, : len(set(task_videos.tolist()))]
        per_task.append(_paired(task, a[mask], b[mask], task_videos, task_draws))
    only_a, only_b = len(a_out) - len(common), len(b_out) - len(common)
    if only_a or only_b:
        notes.append(f"{only_a} items scored only in A and {only_b} only in B were left out")
    return Comparison(
        name_a=Path(path_a).stem, name_b=Path(path_b).stem, overall=overall, per_task=per_task,
        only_in_a=only_a, only_in_b=only_b, bootstrap=bootstrap, seed=seed, failed_rule=failed, notes=notes,
    )
