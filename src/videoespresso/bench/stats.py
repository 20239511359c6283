"""Accuracy statistics: per-task and overall accuracy, video-clustered standard errors, Wilson intervals.

* ``overall_weighted`` is the leaderboard's "Overall": correct answers over all scored questions.
* ``overall_unweighted`` is the paper's "Avg.": the mean of the per-task accuracies.

Accuracies and standard errors are in percent. Standard errors are clustered by video (several
questions share a video, so they are not independent): for an estimator ``sum_i w_i x_i`` with
residuals ``r_i`` around the (task) mean, ``var = G/(G-1) * sum_g (sum_{i in g} w_i r_i)^2`` over
the ``G`` videos; 95% intervals are Wilson intervals on the effective sample size this leaves.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from ..schema import TASKS, Score, TaskScore

_Z95 = 1.959964
INTERVAL_METHOD = ("Wilson score interval on the video-clustered effective sample size; for Avg. (unweighted), on the "
                   "effective size of the mean of task accuracies (each task's own clustered variance)")


def task_order(keys: Iterable[str]) -> list[str]:
    """The benchmark's tasks in leaderboard order, then any other names sorted."""
    known = [t.paper_name for t in TASKS]
    present = set(keys)
    return [k for k in known if k in present] + sorted(present - set(known))


def weighted_overall(per_task: dict[str, float], counts: dict[str, int]) -> float:
    """The leaderboard's Overall from per-task accuracies and question counts."""
    total = sum(counts[t] for t in per_task)
    return sum(per_task[t] * counts[t] for t in per_task) / total


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
    order = task_order(tasks)
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
    per_task, n_t, mean_t, var_t, resid_task = _task_scores(order, t, g, x, parsed, failed)

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


def _task_scores(
    order: list[str], t: np.ndarray, g: np.ndarray, x: np.ndarray, parsed: np.ndarray, failed: np.ndarray
) -> tuple[list[TaskScore], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each task's score, and what the unweighted average's interval needs: the tasks' sizes,
    means and variances (as their own intervals use them) and each item's residual around its
    task's mean."""
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
    return per_task, n_t, mean_t, var_t, resid_task


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
